import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, eventually, untilReached, type TestClient } from '../helpers/clients.js';
import { freePort } from '../helpers/redis-servers.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const children: ChildProcess[] = [];
const clients: TestClient[] = [];

interface Node {
  child: ChildProcess;
  ws: string;
  api: string;
  /** The `msg` of every log line so far. */
  logged: string[];
}

/** Starts `uidpush serve` as a child process on free ports and waits until it listens. */
function node(redis: string, env: NodeJS.ProcessEnv = {}): Promise<Node> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, 'serve', '--port', '0', '--api-port', '0', '--redis', redis, '--log-level', 'info'],
    { env: { ...process.env, UIDPUSH_PRESENCE_TTL: '2000', ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  children.push(child);
  const logged: string[] = [];
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg: string; port: number; api: { port: number } };
      logged.push(entry.msg);
      if (entry.msg === 'listening') {
        resolve({ child, ws: `ws://127.0.0.1:${entry.port}`, api: `http://127.0.0.1:${entry.api.port}`, logged });
      }
    });
    child.once('exit', (code) => {
      reject(new Error(`node exited with ${String(code)}`));
    });
  });
}

async function api(n: Node, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${n.api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function seed(n: Node, uid: string): Promise<TestClient> {
  const c = await connect(n.ws);
  clients.push(c);
  return c.login(uid);
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('3 uidpush nodes on one Redis', { timeout: 60_000 }, () => {
  it('deliver by uid, group and broadcast whichever node the API call reaches', async () => {
    // A namespace of its own, so this cluster meets no other test's nodes.
    const env = { UIDPUSH_REDIS_NAMESPACE: `it-${randomUUID()}` };
    const [a, b, c] = await Promise.all([node(REDIS_URL, env), node(REDIS_URL, env), node(REDIS_URL, env)]);
    const alice = await seed(a, 'alice');
    const aliceOnC = await seed(c, 'alice');
    // A login reply is sent once its presence is recorded: every node counts both at once.
    for (const n of [a, b, c])
      expect((await api(n, 'GET', '/v1/users/alice')).body).toEqual({ uid: 'alice', online: true, connections: 2 });
    expect((await api(b, 'POST', '/v1/push', { uid: 'alice', data: 'from B' })).body).toEqual({ online: 1, connections: 2 });
    expect(await alice.next()).toBe('from B');
    expect(await aliceOnC.next()).toBe('from B');
    await api(c, 'PUT', '/v1/groups/g/members/alice');
    await untilReached(
      (probe) => api(b, 'POST', '/v1/groups/g/push', { data: probe }),
      [(ms) => alice.next(ms), (ms) => aliceOnC.next(ms)],
    );
    await api(b, 'POST', '/v1/groups/g/push', { data: 'group from B' });
    expect(await alice.next()).toBe('group from B');
    expect(await aliceOnC.next()).toBe('group from B');
    expect((await api(c, 'POST', '/v1/broadcast', { data: 'all from C' })).body).toEqual({ connections: 2 });
    expect(await alice.next()).toBe('all from C');
    for (const n of [a, b, c]) expect((await api(n, 'GET', '/v1/stats')).body).toMatchObject({ onlineUids: 1, connections: 2 });
  });

  it('reads the uids of a SIGKILLed node offline within the presence TTL', async () => {
    const env = { UIDPUSH_REDIS_NAMESPACE: `it-${randomUUID()}` };
    const [a, b] = await Promise.all([node(REDIS_URL, env), node(REDIS_URL, env)]);
    await seed(a, 'doomed');
    expect((await api(b, 'GET', '/v1/users/doomed')).body).toMatchObject({ online: true });
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await eventually(async () => {
      expect((await api(b, 'GET', '/v1/users/doomed')).body).toMatchObject({ online: false });
    });
    // UIDPUSH_PRESENCE_TTL is 2 s here (default 15 s); allow the refresh period on top.
    expect(Date.now() - killedAt).toBeLessThan(2000 + 1500);
    // Every cluster-wide read forgets the dead node: the list, the totals, a broadcast's count.
    expect((await api(b, 'GET', '/v1/users')).body).toEqual({ uids: [], nextCursor: null });
    expect((await api(b, 'GET', '/v1/stats')).body).toMatchObject({ onlineUids: 0, connections: 0 });
    expect((await api(b, 'POST', '/v1/broadcast', { data: 'anyone?' })).body).toEqual({ connections: 0 });
  });

  it('keeps serving local clients while Redis is down, and cross-node delivery resumes after', async () => {
    // Its own redis-server on a free port: this test stops a Redis it started, never another.
    const port = await freePort();
    const start = (): ChildProcess => {
      const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: 'ignore',
      });
      children.push(redis);
      return redis;
    };
    const redis = start();
    const url = `redis://127.0.0.1:${port}`;
    await eventually(async () => {
      const { createClient } = await import('@redis/client');
      const probe = createClient({ url, socket: { reconnectStrategy: false } });
      probe.on('error', () => undefined);
      await probe.connect();
      probe.destroy();
    });
    const [a, b] = await Promise.all([node(url), node(url)]);
    const x = await seed(a, 'x');
    const y = await seed(a, 'y');
    const z = await seed(b, 'z');
    expect((await api(b, 'GET', '/v1/users/x')).body).toMatchObject({ online: true });
    redis.kill('SIGKILL');
    await eventually(async () => {
      expect((await api(a, 'GET', '/readyz')).status).toBe(503);
    });
    // Local delivery goes on during the outage.
    x.send('y:local during outage');
    expect(await y.next()).toBe('local during outage');
    x.send('all:local broadcast');
    expect(await x.next()).toBe('local broadcast');
    expect(await y.next()).toBe('local broadcast');
    start();
    await eventually(async () => {
      expect((await api(a, 'GET', '/readyz')).status).toBe(200);
      expect((await api(b, 'GET', '/readyz')).status).toBe(200);
    }, 20_000);
    // Presence is rewritten and cross-node delivery resumes, without restarting uidpush.
    await eventually(async () => {
      expect((await api(b, 'GET', '/v1/users/x')).body).toMatchObject({ online: true });
    });
    await eventually(async () => {
      z.send('x:across after the outage');
      expect(await x.next(300)).toBe('across after the outage');
    });
    // One line when Redis went away and one when it came back, however many writes failed.
    await eventually(() => {
      for (const n of [a, b]) {
        expect(n.logged.filter((m) => m === 'redis: connection lost; serving local clients only')).toHaveLength(1);
        expect(n.logged.filter((m) => m === 'redis: back')).toHaveLength(1);
      }
      return Promise.resolve();
    });
  });
});

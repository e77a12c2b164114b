import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, connectV1, eventually, startServer, waitFor, type Started, type TestClient } from '../helpers/clients.js';
import { startRedisServer, type RedisServerHandle } from '../helpers/redis-servers.js';

// Redis faults against real nodes: each test starts its own redis-server, freezes it
// (SIGSTOP: connected, answering nothing) or kills it, and checks what the nodes answer.
const TIMEOUT = 1000;
/** Slack for a loaded box on top of a deadline: the sweep's 100 ms, the event loop, HTTP. */
const SLACK = 700;

const nodes: Started[] = [];
const clients: TestClient[] = [];
let redis: RedisServerHandle | undefined;

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  redis?.thaw();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  redis?.stop();
  redis = undefined;
});

async function cluster(extra: Record<string, unknown> = {}): Promise<[Started, Started]> {
  redis = await startRedisServer();
  const options = {
    redis: redis.url,
    redisNamespace: `outage-${randomUUID()}`,
    brokerTimeout: TIMEOUT,
    presenceTtl: 6000,
    rateLimit: 0,
    ...extra,
  };
  const a = await startServer(options);
  const b = await startServer(options);
  nodes.push(a, b);
  return [a, b];
}

function apiOf(node: Started): string {
  return `http://127.0.0.1:${String(node.server.address().api?.port ?? 0)}`;
}

async function call(node: Started, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown; ms: number }> {
  const started = Date.now();
  const res = await fetch(`${apiOf(node)}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), ms: Date.now() - started };
}

async function seed(node: Started, uid: string): Promise<TestClient> {
  const c = await connect(node.url);
  clients.push(c);
  return c.login(uid);
}

async function v1(node: Started, uid: string): Promise<TestClient> {
  const c = await connectV1(node.url);
  clients.push(c);
  c.sendJson({ type: 'auth', uid });
  expect(await c.nextJson()).toMatchObject({ type: 'welcome', uid });
  return c;
}

/** Waits until a push from `from` reaches `to` across the nodes (subscribing is asynchronous). */
async function linked(from: Started, to: TestClient, uid: string): Promise<void> {
  await eventually(async () => {
    await call(from, 'POST', '/v1/push', { uid, data: 'link' });
    expect(await to.next(300)).toBe('link');
  });
}

async function metric(node: Started, name: string): Promise<number> {
  const got = await node.server.metrics.registry.getSingleMetric(name)?.get();
  return got?.values[0]?.value ?? Number.NaN;
}

describe('a frozen Redis (SIGSTOP)', { timeout: 60_000 }, () => {
  it('turns /readyz to 503 within brokerTimeout plus the probe period, and back to 200 after SIGCONT', async () => {
    const [a] = await cluster();
    expect((await call(a, 'GET', '/readyz')).status).toBe(200);
    redis?.freeze();
    const frozenAt = Date.now();
    await eventually(async () => {
      expect((await call(a, 'GET', '/readyz')).status).toBe(503);
    });
    // A probe every half timeout (at most 1 s), not ready once one waited `timeout`.
    expect(Date.now() - frozenAt).toBeLessThan(TIMEOUT + TIMEOUT / 2 + SLACK);
    redis?.thaw();
    await eventually(async () => {
      expect((await call(a, 'GET', '/readyz')).status).toBe(200);
    });
  });

  it('answers every read and group change that waits on Redis with 503 unavailable within brokerTimeout', async () => {
    const [a] = await cluster();
    await seed(a, 'here');
    redis?.freeze();
    const requests: [string, string, unknown?][] = [
      ['GET', '/v1/users/here'],
      ['GET', '/v1/users'],
      ['GET', '/v1/stats'],
      ['GET', '/v1/groups/g'],
      ['PUT', '/v1/groups/g/members/here'],
      ['DELETE', '/v1/groups/g/members/here'],
      ['POST', '/v1/users/here/kick', { reason: 'bye' }],
      ['POST', '/v1/push', { uid: 'elsewhere', data: 'x' }],
      ['POST', '/v1/groups/g/push', { data: 'x' }],
    ];
    const answers = await Promise.all(requests.map(([method, path, body]) => call(a, method, path, body)));
    answers.forEach((answer, i) => {
      const what = requests[i]?.slice(0, 2).join(' ') ?? '';
      expect(answer.status, what).toBe(503);
      expect(answer.body, what).toMatchObject({ error: { code: 'unavailable' } });
      expect(answer.ms, what).toBeLessThan(TIMEOUT + SLACK);
    });
    // Nothing was done: the kicked uid's client is still connected, and /readyz says why.
    expect(a.server.local.connectionsOf('here')).toBe(1);
    expect((await call(a, 'GET', '/readyz')).status).toBe(503);
  });

  it('answers every v1 request with an id: ack degraded when delivered here, error unavailable otherwise', async () => {
    const [a, b] = await cluster();
    const sender = await v1(a, 'sender');
    const local = await seed(a, 'local');
    const remote = await seed(b, 'remote');
    await linked(a, remote, 'remote');
    redis?.freeze();
    sender.sendJson({ type: 'send', to: 'local', data: 'to a local uid', id: 1 });
    expect(await local.next()).toBe('to a local uid');
    expect(await sender.nextJson(TIMEOUT + SLACK)).toEqual({
      type: 'ack',
      id: 1,
      result: { online: true, connections: 1, degraded: true },
    });
    sender.sendJson({ type: 'send', to: 'remote', data: 'to a remote uid', id: 2 });
    expect(await sender.nextJson(TIMEOUT + SLACK)).toMatchObject({ type: 'error', code: 'unavailable', id: 2 });
    sender.sendJson({ type: 'publish', group: 'nobody-here', data: 'x', id: 3 });
    expect(await sender.nextJson(TIMEOUT + SLACK)).toMatchObject({ type: 'error', code: 'unavailable', id: 3 });
    sender.sendJson({ type: 'join', group: 'g', id: 4 });
    expect(await sender.nextJson(TIMEOUT + SLACK)).toMatchObject({ type: 'error', code: 'unavailable', id: 4 });
    sender.sendJson({ type: 'leave', group: 'g', id: 5 });
    expect(await sender.nextJson(TIMEOUT + SLACK)).toMatchObject({ type: 'error', code: 'unavailable', id: 5 });
    // The connection stays usable, and the remote uid never gets the refused push, late or not.
    sender.sendJson({ type: 'ping', id: 6 });
    expect(await sender.nextJson()).toEqual({ type: 'pong', id: 6 });
    redis?.thaw();
    await linked(a, remote, 'remote');
    expect(remote.received).not.toContain('"to a remote uid"');
  });

  it('bounds what waits for Redis in bytes, refuses the rest, and never delivers the waiting pushes late', async () => {
    const maxPending = 1024 * 1024;
    const [a, b] = await cluster({ brokerMaxPendingBytes: maxPending });
    const pusher = await seed(a, 'pusher');
    const target = await seed(b, 'target');
    await linked(a, target, 'target');
    const before = target.received.length;
    redis?.freeze();
    const payload = 'x'.repeat(60_000);
    const sent = 150;
    for (let i = 0; i < sent; i++) pusher.send(`target:${payload}`);
    // Past the byte bound every push is refused at once: 150 x 60 KB is 9 MB, the bound 1 MiB.
    // Wait for every push to be taken (published and waiting, or refused) and every refusal
    // to reach the client: a count read between two of them would not add up.
    let refusedAtA = 0;
    await eventually(async () => {
      refusedAtA = await metric(a, 'uidpush_broker_refused_pushes_total');
      expect(refusedAtA + (await metric(a, 'uidpush_broker_pending_publishes'))).toBe(sent);
    });
    await waitFor(() => pusher.received.filter((m) => m.startsWith('error: unavailable')).length === refusedAtA, 10_000);
    const pendingBytes = await metric(a, 'uidpush_broker_pending_bytes');
    const pending = await metric(a, 'uidpush_broker_pending_publishes');
    expect(pendingBytes).toBeGreaterThan(0);
    expect(pendingBytes).toBeLessThanOrEqual(maxPending);
    expect(pending).toBe(sent - pusher.received.filter((m) => m.startsWith('error: unavailable')).length);
    expect(await metric(a, 'uidpush_broker_refused_pushes_total')).toBeGreaterThanOrEqual(sent - 20);
    // Once the oldest has waited past the timeout, every push waiting is stale, and the node
    // is not ready.
    await eventually(async () => {
      expect(await metric(a, 'uidpush_broker_oldest_pending_seconds')).toBeGreaterThan(TIMEOUT / 1000);
    });
    expect((await call(a, 'GET', '/readyz')).status).toBe(503);
    redis?.thaw();
    // Redis runs the publishes it was sent; node B drops every one of them as stale.
    await eventually(async () => {
      const late = target.received.slice(before).filter((m) => m.includes(payload)).length;
      expect(await metric(b, 'uidpush_broker_stale_pushes_total'), `${String(late)} delivered late`).toBe(pending);
    });
    await eventually(async () => {
      expect(await metric(a, 'uidpush_broker_pending_bytes')).toBe(0);
    });
    await linked(a, target, 'target');
    expect(target.received.slice(before).filter((m) => m.includes(payload))).toEqual([]);
    expect(target.closeCode).toBeUndefined();
  });
});

describe('a killed Redis', { timeout: 60_000 }, () => {
  it('an API push to a uid of this node is delivered and answered 200 degraded; one to no one here is 503', async () => {
    const [a] = await cluster({ innerPort: 0 });
    const local = await seed(a, 'local');
    redis?.stop();
    await eventually(async () => {
      expect((await call(a, 'GET', '/readyz')).status).toBe(503);
    });
    const delivered = await call(a, 'POST', '/v1/push', { uids: ['local', 'remote'], data: 'during the outage' });
    expect(delivered).toMatchObject({ status: 200, body: { online: 1, connections: 1, degraded: true } });
    expect(await local.next()).toBe('during the outage');
    const broadcast = await call(a, 'POST', '/v1/broadcast', { data: 'all' });
    expect(broadcast).toMatchObject({ status: 200, body: { connections: 1, degraded: true } });
    expect(await local.next()).toBe('all');
    const refused = await call(a, 'POST', '/v1/push', { uid: 'remote', data: 'x' });
    expect(refused).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
    // The seed protocol: a push that reaches no one is refused with the same code.
    local.send('remote:hello');
    expect(await local.next()).toMatch(/^error: unavailable /);
    local.send('local:to myself');
    expect(await local.next()).toBe('to myself');
    // The inner text port: delivered here is ok, delivered to no one is unavailable.
    const socket = createConnection({ host: '127.0.0.1', port: a.server.address().inner?.port ?? 0 });
    await once(socket, 'connect');
    const lines = createInterface({ input: socket })[Symbol.asyncIterator]();
    socket.write('{"uid":"local","text":"inner"}\n');
    expect((await lines.next()).value).toBe('ok');
    expect(await local.next()).toBe('{"uid":"local","text":"inner"}');
    socket.write('{"uid":"remote"}\n');
    expect((await lines.next()).value).toBe('error unavailable');
    socket.destroy();
  });
});

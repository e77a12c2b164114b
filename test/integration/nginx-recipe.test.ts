import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { ClientOptions } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { eventually, TestClient } from '../helpers/clients.js';
import { freePort } from '../helpers/redis-servers.js';
import { commands, Leftovers, recipe, substitute, uidpushOnPath } from '../helpers/recipes.js';
import { hs256 } from '../helpers/tokens.js';

// "Three nodes behind nginx" in docs/operations.md, run as written: its blocks are read from
// the doc at test time and only the example addresses, ports and paths are replaced.

const ROOT = join(import.meta.dirname, '../..');
const DOC = 'docs/operations.md';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const HOSTNAME = 'push.example.com';
const run = promisify(execFile);

const hasNginx = spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;
const inCi = process.env.CI === 'true';

interface Node {
  child: ChildProcess;
  ws: number;
  api: string;
}

interface Bed {
  /** The certificate the recipe made, which clients are told to trust. */
  ca: Buffer;
  secret: string;
  apiKey: string;
  nodes: Node[];
  /** nginx's TLS port (the recipe's 443) and its private API port (the recipe's 1235). */
  tls: number;
  api: string;
}

const leftovers = new Leftovers();
const { children, clients, dirs } = leftovers;

/** Runs the doc's `uidpush serve` line with `uidpush` on PATH, and waits for 'listening'. */
function startNode(line: string, env: NodeJS.ProcessEnv): Promise<Node> {
  // The doc's default ports would collide with a running `npm start`: tests use free ones.
  const child = spawn('sh', ['-c', `exec ${line} --port 0 --api-port 0`], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (text) => {
      let entry: { msg?: string; port: number; api: { port: number } };
      try {
        entry = JSON.parse(text) as typeof entry;
      } catch {
        return; // not a log line
      }
      if (entry.msg === 'listening') resolve({ child, ws: entry.port, api: `http://127.0.0.1:${entry.api.port}` });
    });
    child.once('exit', (code) => {
      reject(new Error(`uidpush serve exited with ${String(code)}`));
    });
  });
}

/** Starts what the recipe describes: a certificate, 3 nodes on Redis, nginx in front. */
async function startRecipe(): Promise<Bed> {
  if (!hasNginx) throw new Error('nginx is not installed (CI=true): .ci/run installs it with apt-get install nginx');
  const dir = await mkdtemp(join(tmpdir(), 'uidpush-nginx-'));
  dirs.push(dir);

  const cert = commands((await recipe(DOC, 'certificate')).text);
  const certPath = join(dir, 'uidpush.crt');
  const keyPath = join(dir, 'uidpush.key');
  for (const line of cert) {
    await run('sh', [
      '-c',
      substitute(line, [
        ['/etc/ssl/certs/uidpush.crt', certPath],
        ['/etc/ssl/private/uidpush.key', keyPath],
      ]),
    ]);
  }

  const nodeLines = commands((await recipe(DOC, 'nodes')).text);
  const exported = nodeLines.find((l) => l.startsWith('export '));
  const serve = nodeLines.find((l) => l.startsWith('uidpush serve '));
  if (exported === undefined || serve === undefined) throw new Error('the nodes recipe lost its export or its uidpush serve line');
  // The secret and the key the doc has the operator export, with real values.
  const names = exported
    .slice('export '.length)
    .split(/\s+/)
    .map((a) => a.split('=')[0]);
  expect(names).toEqual(['UIDPUSH_JWT_SECRET', 'UIDPUSH_API_KEY']);
  const secret = randomBytes(32).toString('hex');
  const apiKey = randomBytes(32).toString('hex');
  const env = {
    ...process.env,
    PATH: await uidpushOnPath(dir),
    NODE: '127.0.0.1',
    UIDPUSH_JWT_SECRET: secret,
    UIDPUSH_API_KEY: apiKey,
    // A namespace of its own, so these nodes meet no other test's.
    UIDPUSH_REDIS_NAMESPACE: `nginx-${randomUUID()}`,
  };
  const line = substitute(serve, [['redis://10.0.0.5:6379', REDIS_URL]]);
  const nodes = await Promise.all([0, 1, 2].map(() => startNode(line, env)));

  const [tls, apiProxy] = [await freePort(), await freePort()];
  const site = substitute((await recipe(DOC, 'nginx')).text, [
    ['listen 443 ssl;', `listen 127.0.0.1:${tls} ssl;`],
    ['listen 10.0.0.2:1235;', `listen 127.0.0.1:${apiProxy};`],
    ['/etc/ssl/certs/uidpush.crt', certPath],
    ['/etc/ssl/private/uidpush.key', keyPath],
    ...nodes.flatMap((n, i): [string, string][] => [
      [`10.0.0.1${i + 1}:1234`, `127.0.0.1:${n.ws}`],
      [`10.0.0.1${i + 1}:1235`, n.api.replace('http://', '')],
    ]),
  ]);
  await writeFile(join(dir, 'uidpush.conf'), site);
  // What Debian's /etc/nginx/nginx.conf provides around conf.d/*.conf, in the temp dir:
  // one process in the foreground (so one PID to end), nothing written outside `dir`.
  const main = [
    'daemon off;',
    'master_process off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 256; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`),
    `  include ${dir}/uidpush.conf;`,
    '}',
  ].join('\n');
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, main);

  // Its log goes to the temp dir: the refused connections it logs are the test's own doing.
  const check = spawnSync('nginx', ['-t', '-p', dir, '-c', conf, '-e', 'stderr'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const nginx = spawn('nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  children.push(nginx);
  const bed: Bed = { ca: await readFile(certPath), secret, apiKey, nodes, tls, api: `http://127.0.0.1:${apiProxy}` };
  // nginx prints nothing once it listens: the first answer over TLS is the event.
  let settled = false;
  const died = new Promise<never>((_, reject) => {
    nginx.once('exit', (code) => {
      if (settled) return;
      void readFile(join(dir, 'error.log'), 'utf8')
        .catch(() => '(no error log)')
        .then((log) => {
          reject(new Error(`nginx exited with ${String(code)}:\n${log}`));
        });
    });
  });
  try {
    await Promise.race([
      eventually(async () => {
        expect((await httpsGet(bed, '/')).status).toBe(404);
      }),
      died,
    ]);
  } finally {
    settled = true;
  }
  return bed;
}

/** A GET through nginx's TLS server, trusting the recipe's certificate. */
function httpsGet(bed: Bed, path: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: bed.tls, path, ca: bed.ca, servername: HOSTNAME }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A client on wss://push.example.com/ws through nginx, logged in by a handshake token. */
async function viaNginx(bed: Bed, uid: string, protocol?: string): Promise<TestClient> {
  const token = await hs256({ sub: uid }, bed.secret);
  // ws hands these to tls.connect; servername makes it check the name a real client dials.
  const tls: ClientOptions & Pick<ConnectionOptions, 'servername'> = { ca: bed.ca, servername: HOSTNAME };
  const c = new TestClient(`wss://127.0.0.1:${bed.tls}/ws?token=${token}`, tls, protocol);
  clients.push(c);
  await c.open();
  return c;
}

async function push(base: string, key: string | undefined, uid: string, data: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${base}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) },
    body: JSON.stringify({ uid, data }),
  });
  return { status: res.status, body: await res.json() };
}

/** Logged-in connections of one node, from its own /metrics. */
async function connectionsOn(bed: Bed, n: Node): Promise<number> {
  const res = await fetch(`${n.api}/metrics`, { headers: { authorization: `Bearer ${bed.apiKey}` } });
  const line = /^uidpush_connections (\d+)$/m.exec(await res.text());
  return Number(line?.[1]);
}

async function stop(): Promise<void> {
  await leftovers.end();
}

describe.skipIf(!hasNginx && !inCi)('the nginx recipe of docs/operations.md', { timeout: 60_000 }, () => {
  let bed: Bed | undefined;
  const started = (): Bed => {
    if (bed === undefined) throw new Error('the recipe did not start');
    return bed;
  };

  describe('3 nodes behind nginx', () => {
    beforeAll(async () => {
      bed = await startRecipe();
    }, 60_000);
    // A closed client has left nginx's least_conn count too: nginx frees the upstream peer
    // before it closes the client's side.
    afterEach(async () => {
      const open = clients.splice(0);
      for (const c of open) c.close();
      await Promise.all(open.map((c) => c.closed()));
    });
    afterAll(async () => {
      await stop();
      bed = undefined;
    });

    it('passes a push from a node API through nginx to a wss client of each protocol', async () => {
      const b = started();
      const seed = await viaNginx(b, 'alice');
      expect(await seed.next()).toBe('login success, your uid is alice');
      const v1 = await viaNginx(b, 'alice', 'uidpush.v1');
      expect(await v1.nextJson()).toMatchObject({ type: 'welcome', uid: 'alice' });
      const [, , third] = b.nodes;
      if (third === undefined) throw new Error('3 nodes expected');
      // The uid's channel subscription settles asynchronously on the nodes that took the clients.
      await eventually(async () => {
        expect((await push(third.api, b.apiKey, 'alice', 'probe')).body).toEqual({ online: 1, connections: 2 });
      });
      await push(third.api, b.apiKey, 'alice', 'your order shipped');
      while ((await seed.next()) !== 'your order shipped');
      for (;;) {
        const frame = await v1.nextJson();
        if (frame.data === 'your order shipped') break;
      }
    });

    it('sends each new client to the node holding fewest (least_conn, not round robin)', async () => {
      const b = started();
      const held: TestClient[] = [];
      for (const uid of ['u1', 'u2', 'u3']) {
        const c = await viaNginx(b, uid);
        expect(await c.next()).toBe(`login success, your uid is ${uid}`);
        held.push(c);
      }
      const counts = (): Promise<number[]> => Promise.all(b.nodes.map((n) => connectionsOn(b, n)));
      expect(await counts()).toEqual([1, 1, 1]);
      // Equal weights make round robin a cycle of 3: it would give the next two clients to
      // the nodes of u1 and u2. least_conn gives them to the two nodes left empty.
      const [, u2, u3] = held;
      if (u2 === undefined || u3 === undefined) throw new Error('3 clients expected');
      u2.close();
      u3.close();
      await Promise.all([u2.closed(), u3.closed()]);
      for (const uid of ['u4', 'u5']) expect(await (await viaNginx(b, uid)).next()).toBe(`login success, your uid is ${uid}`);
      // A node may count a closed client a moment after nginx has let it go.
      await eventually(async () => {
        expect(await counts()).toEqual([1, 1, 1]);
      }, 3000);
    });

    it('serves the API on the private listener with its key only, and not on the TLS server', async () => {
      const b = started();
      const bob = await viaNginx(b, 'bob');
      expect(await bob.next()).toBe('login success, your uid is bob');
      expect((await push(b.api, undefined, 'bob', 'no key')).status).toBe(401);
      await eventually(async () => {
        expect((await push(b.api, b.apiKey, 'bob', 'via the API listener')).body).toEqual({ online: 1, connections: 1 });
      });
      while ((await bob.next()) !== 'via the API listener');
      for (const path of ['/v1/stats', '/metrics', '/readyz', '/ws/../v1/stats']) expect((await httpsGet(b, path)).status).toBe(404);
    });
  });

  describe('with a node down', () => {
    afterAll(async () => {
      await stop();
      bed = undefined;
    });

    it('hands every new client and API call to a live node (passive checks, proxy_next_upstream)', async () => {
      bed = await startRecipe();
      const b = bed;
      const [dead, ...alive] = b.nodes;
      if (dead === undefined) throw new Error('3 nodes expected');
      const exited = once(dead.child, 'exit');
      dead.child.kill('SIGKILL');
      await exited;
      // Round-robin order among equals would give the dead node one client in three: each
      // of these 6 must be retried on a live node, never refused.
      const logged: TestClient[] = [];
      for (let i = 0; i < 6; i++) {
        const c = await viaNginx(b, `c${i}`);
        expect(await c.next()).toBe(`login success, your uid is c${i}`);
        logged.push(c);
      }
      const counts = await Promise.all(alive.map((n) => connectionsOn(b, n)));
      expect(counts.reduce((x, y) => x + y, 0)).toBe(6);
      // The API upstream has the dead node too: each call is answered by a live one.
      for (const [i, c] of logged.entries()) {
        expect((await push(b.api, b.apiKey, `c${i}`, `to c${i}`)).body).toEqual({ online: 1, connections: 1 });
        expect(await c.next()).toBe(`to c${i}`);
      }
    });
  });
});

import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PushApiError, PushClient } from '../../src/api-client/index.js';
import { runCli } from '../helpers/cli.js';
import { connect, startServer, type Started, type TestClient } from '../helpers/clients.js';

const KEY = 'client-test-key-0123456789';
let started: Started;
let apiUrl: string;
let client: PushClient;
const sockets: TestClient[] = [];
const extraServers: { close(): void }[] = [];

async function ws(uid: string): Promise<TestClient> {
  const c = await connect(started.url);
  sockets.push(c);
  return c.login(uid);
}

beforeEach(async () => {
  started = await startServer({ apiKey: KEY });
  apiUrl = `http://127.0.0.1:${started.server.address().api?.port ?? 0}`;
  client = new PushClient({ url: apiUrl, apiKey: KEY, timeoutMs: 2000 });
});
afterEach(async () => {
  for (const c of sockets.splice(0)) c.close();
  for (const s of extraServers.splice(0)) s.close();
  await started.stop();
});

/** An HTTP server on a free port that answers with `handler`. */
async function fakeApi(handler: Parameters<typeof createHttpServer>[1]): Promise<string> {
  const server: Server = createHttpServer(handler);
  extraServers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('PushClient', () => {
  it('pushes to a uid, to uids, and broadcasts', async () => {
    const a = await ws('a');
    const b = await ws('b');
    expect(await client.push('a', 'text as is')).toEqual({ online: 1, connections: 1 });
    expect(await a.next()).toBe('text as is');
    expect(await client.pushMany(['a', 'b', 'z'], { n: 1 })).toEqual({ online: 2, connections: 2 });
    expect(await a.next()).toBe('{"n":1}');
    expect(await b.next()).toBe('{"n":1}');
    expect(await client.broadcast('all of you')).toEqual({ connections: 2 });
    expect(await b.next()).toBe('all of you');
  });

  it('reads presence, pages of uids, every uid, and stats', async () => {
    for (const u of ['u1', 'u2', 'u3']) await ws(u);
    expect(await client.user('u1')).toEqual({ uid: 'u1', online: true, connections: 1 });
    expect(await client.user('nope')).toEqual({ uid: 'nope', online: false, connections: 0 });
    const page = await client.users({ limit: 2 });
    expect(page.uids).toEqual(['u1', 'u2']);
    const all: string[] = [];
    for await (const uid of client.allUsers(2)) all.push(uid);
    expect(all).toEqual(['u1', 'u2', 'u3']);
    expect(await client.stats()).toMatchObject({ onlineUids: 3, connections: 3 });
    expect(await client.ready()).toBe(true);
  });

  it('kicks a uid with a reason', async () => {
    const a = await ws('a');
    expect(await client.kick('a', 'bye')).toEqual({ uid: 'a', kicked: 1 });
    expect(await a.closed()).toBe(4501);
    expect(a.closeReason).toBe('bye');
  });

  it('removes a uid from every group at once, on its own groups only', async () => {
    const a = await ws('a');
    for (const group of ['g1', 'g2', 'g3']) await client.addToGroup(group, 'a');
    await client.addToGroup('g1', 'b');
    expect(await client.removeFromAllGroups('a')).toEqual({ uid: 'a', left: 3 });
    expect(await client.group('g1')).toMatchObject({ members: 1, online: 0 });
    expect(await client.group('g2')).toMatchObject({ members: 0 });
    expect(await client.pushToGroup('g2', 'to no one')).toEqual({ online: 0, connections: 0 });
    expect(await client.removeFromAllGroups('a')).toEqual({ uid: 'a', left: 0 });
    await expect(client.removeFromAllGroups('all')).rejects.toMatchObject({ code: 'bad_request', status: 400 });
    // Still connected, and still reachable by uid.
    await client.push('a', 'direct');
    expect(await a.next()).toBe('direct');
  });

  it('rejects with the API error code and status', async () => {
    const wrong = new PushClient({ url: apiUrl, apiKey: 'not-the-key-0123456789' });
    await expect(wrong.push('a', 'x')).rejects.toMatchObject({ name: 'PushApiError', code: 'unauthorized', status: 401 });
    await expect(client.push('', 'x')).rejects.toMatchObject({ code: 'bad_request', status: 400 });
    await expect(client.users({ cursor: 'forged' })).rejects.toBeInstanceOf(PushApiError);
  });

  it('reports an unreachable server as network, after retrying reads', async () => {
    const closed = await fakeApi(() => undefined);
    extraServers.pop()?.close();
    const c = new PushClient({ url: closed, retries: 1, retryBaseMs: 1 });
    await expect(c.stats()).rejects.toMatchObject({ code: 'network' });
    await expect(c.push('a', 'x')).rejects.toMatchObject({ code: 'network' });
  });

  it('times out a server that never answers', async () => {
    const silent = createNetServer(() => undefined);
    extraServers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const c = new PushClient({ url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 100, retries: 0 });
    await expect(c.stats()).rejects.toMatchObject({ code: 'timeout' });
  });

  it('retries idempotent calls on 5xx with backoff, and never retries a push', async () => {
    let hits = 0;
    const url = await fakeApi((req, res) => {
      hits++;
      if (hits < 3) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"internal","message":"busy"}}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url === '/v1/stats' ? '{"onlineUids":0}' : '{"online":1,"connections":1}');
    });
    const c = new PushClient({ url, retries: 2, retryBaseMs: 5 });
    expect(await c.stats()).toEqual({ onlineUids: 0 });
    expect(hits).toBe(3);
    hits = 0;
    await expect(c.push('a', 'x')).rejects.toMatchObject({ code: 'internal', status: 503 });
    expect(hits).toBe(1);
  });

  it('reports an answer that is not the API JSON as bad_response', async () => {
    const url = await fakeApi((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<h1>Bad gateway</h1>');
    });
    await expect(new PushClient({ url, retries: 0 }).stats()).rejects.toMatchObject({ code: 'bad_response', status: 502 });
  });
});

const cli = runCli;

describe('CLI API commands', { timeout: 60_000 }, () => {
  it('push, push --uids, broadcast', async () => {
    const a = await ws('a');
    const b = await ws('b');
    const env = { UIDPUSH_API_URL: apiUrl, UIDPUSH_API_KEY: KEY };
    const one = await cli(['push', 'a', 'hello: a'], env);
    expect(one).toMatchObject({ code: 0 });
    expect(JSON.parse(one.stdout)).toEqual({ online: 1, connections: 1 });
    expect(await a.next()).toBe('hello: a');
    const many = await cli(['push', '--uids', 'a,b,c', '{"k":1}', '--json'], env);
    expect(JSON.parse(many.stdout)).toEqual({ online: 2, connections: 2 });
    expect(await b.next()).toBe('{"k":1}');
    const all = await cli(['broadcast', 'everyone', '--api-url', apiUrl, '--api-key', KEY]);
    expect(JSON.parse(all.stdout)).toEqual({ connections: 2 });
    expect(await b.next()).toBe('everyone');
  });

  it('online, kick, stats', async () => {
    const a = await ws('a');
    await ws('b');
    const env = { UIDPUSH_API_URL: apiUrl, UIDPUSH_API_KEY: KEY };
    expect(JSON.parse((await cli(['online', 'a'], env)).stdout)).toEqual({ uid: 'a', online: true, connections: 1 });
    expect(JSON.parse((await cli(['online'], env)).stdout)).toEqual({ online: 2, uids: ['a', 'b'] });
    expect(JSON.parse((await cli(['kick', 'a', '--reason', 'cli'], env)).stdout)).toEqual({ uid: 'a', kicked: 1 });
    expect(await a.closed()).toBe(4501);
    expect(JSON.parse((await cli(['stats'], env)).stdout)).toMatchObject({ onlineUids: 1 });
  });

  it('exits 1 with a clear message when the call fails, 2 on bad usage', async () => {
    const wrong = await cli(['stats', '--api-url', apiUrl, '--api-key', 'wrong-key-0123456789']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/uidpush stats: unauthorized: missing or wrong API key .*\(HTTP 401\)/);
    const down = await cli(['push', 'a', 'x', '--api-url', 'http://127.0.0.1:1', '--timeout', '500']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/uidpush push: network: POST \/v1\/push: cannot reach http:\/\/127\.0\.0\.1:1/);
    const usage = await cli(['push', 'only-a-uid']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/missing <message>|expected 2 argument/);
    const badJson = await cli(['broadcast', '{nope', '--json']);
    expect(badJson.code).toBe(2);
    expect(badJson.stderr).toMatch(/--json: <message> is not JSON/);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type ServerOptions } from '../../src/index.js';
import { connect, startServer, type Started, type TestClient } from '../helpers/clients.js';

const KEY = 'test-key-0123456789abcdef';
let started: Started;
let api: string;
const clients: TestClient[] = [];

async function setup(options: ServerOptions = {}): Promise<void> {
  started = await startServer({ apiKey: KEY, ...options });
  const address = started.server.address();
  api = `http://127.0.0.1:${address.api?.port ?? 0}`;
}
async function client(uid?: string): Promise<TestClient> {
  const c = await connect(started.url);
  clients.push(c);
  if (uid !== undefined) await c.login(uid);
  return c;
}

/** A request with the key (unless `key` says otherwise) and a JSON body. */
async function call(
  method: string,
  path: string,
  body?: unknown,
  init: { key?: string | null; raw?: string; contentType?: string } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers: Record<string, string> = {};
  const key = init.key === undefined ? KEY : init.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  let payload: string | undefined;
  if (init.raw !== undefined || body !== undefined) {
    headers['content-type'] = init.contentType ?? 'application/json';
    payload = init.raw ?? JSON.stringify(body);
  }
  const res = await fetch(`${api}${path}`, { method, headers, body: payload });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON (e.g. /metrics)
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

beforeEach(async () => {
  await setup();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started.stop();
});

describe('POST /v1/push', () => {
  it('pushes a string as the text frame itself to every connection of the uid', async () => {
    const phone = await client('alice');
    const laptop = await client('alice');
    const bob = await client('bob');
    const res = await call('POST', '/v1/push', { uid: 'alice', data: 'hello: from the backend' });
    expect(res).toMatchObject({ status: 200, body: { online: 1, connections: 2 } });
    expect(await phone.next()).toBe('hello: from the backend');
    expect(await laptop.next()).toBe('hello: from the backend');
    await bob.nothingFor(100);
  });

  it('pushes any other JSON value as its JSON text', async () => {
    const alice = await client('alice');
    await call('POST', '/v1/push', { uid: 'alice', data: { type: 'order', id: 7, tags: ['a'] } });
    expect(JSON.parse(await alice.next())).toEqual({ type: 'order', id: 7, tags: ['a'] });
    await call('POST', '/v1/push', { uid: 'alice', data: 42 });
    expect(await alice.next()).toBe('42');
    await call('POST', '/v1/push', { uid: 'alice', data: null });
    expect(await alice.next()).toBe('null');
  });

  it('pushes to a list of uids and counts who was online', async () => {
    const a = await client('a');
    const b1 = await client('b');
    const b2 = await client('b');
    const res = await call('POST', '/v1/push', { uids: ['a', 'b', 'nobody'], data: 'batch' });
    expect(res).toMatchObject({ status: 200, body: { online: 2, connections: 3 } });
    for (const c of [a, b1, b2]) expect(await c.next()).toBe('batch');
  });

  it('answers 0 online for an offline uid and delivers nothing', async () => {
    const res = await call('POST', '/v1/push', { uid: 'nobody', data: 'x' });
    expect(res).toMatchObject({ status: 200, body: { online: 0, connections: 0 } });
  });
});

describe('other routes', () => {
  it('POST /v1/broadcast reaches every logged-in connection and no other', async () => {
    const a = await client('a');
    const b = await client('b');
    const anonymous = await client();
    const res = await call('POST', '/v1/broadcast', { data: 'to all' });
    expect(res).toMatchObject({ status: 200, body: { connections: 2 } });
    expect(await a.next()).toBe('to all');
    expect(await b.next()).toBe('to all');
    await anonymous.nothingFor(100);
  });

  it('GET /v1/users/{uid} reports presence and connection count', async () => {
    await client('alice');
    await client('alice');
    expect(await call('GET', '/v1/users/alice')).toMatchObject({
      status: 200,
      body: { uid: 'alice', online: true, connections: 2 },
    });
    expect(await call('GET', '/v1/users/bob')).toMatchObject({
      status: 200,
      body: { uid: 'bob', online: false, connections: 0 },
    });
    expect((await call('GET', `/v1/users/${encodeURIComponent('a b/é')}`)).body).toMatchObject({ uid: 'a b/é' });
  });

  it('GET /v1/users pages through online uids', async () => {
    for (const u of ['u1', 'u2', 'u3', 'u4', 'u5']) await client(u);
    const first = await call('GET', '/v1/users?limit=2');
    expect(first.body).toMatchObject({ uids: ['u1', 'u2'] });
    const cursor = (first.body as { nextCursor: string }).nextCursor;
    const second = await call('GET', `/v1/users?limit=10&cursor=${cursor}`);
    expect(second.body).toEqual({ uids: ['u3', 'u4', 'u5'], nextCursor: null });
    expect((await call('GET', '/v1/users')).body).toMatchObject({ uids: ['u1', 'u2', 'u3', 'u4', 'u5'] });
  });

  it('POST /v1/users/{uid}/kick closes every connection of the uid with 4501 and the reason', async () => {
    const a1 = await client('a');
    const a2 = await client('a');
    const b = await client('b');
    const res = await call('POST', '/v1/users/a/kick', { reason: 'account closed' });
    expect(res).toMatchObject({ status: 200, body: { uid: 'a', kicked: 2 } });
    expect(await a1.closed()).toBe(4501);
    expect(await a2.closed()).toBe(4501);
    expect(a1.closeReason).toBe('account closed');
    expect(b.closeCode).toBeUndefined();
    // No body at all is fine too.
    const c = await client('c');
    expect((await call('POST', '/v1/users/c/kick')).body).toEqual({ uid: 'c', kicked: 1 });
    expect(c.closeReason).toBe('');
    expect(await c.closed()).toBe(4501);
    expect(c.closeReason).toBe('kicked');
  });

  it('GET /v1/stats reports counts, traffic and drops', async () => {
    const a = await client('a');
    await client('b');
    await client();
    a.send('b:hi');
    a.send('nobody:hi');
    a.send('no colon');
    await a.next();
    const { body } = await call('GET', '/v1/stats');
    expect(body).toMatchObject({
      onlineUids: 2,
      connections: 2,
      openConnections: 3,
      messagesIn: 5,
      dropped: { offline: 1, bad_request: 1, slow_consumer: 0, too_large: 0, rate_limited: 0 },
      heartbeatCloses: 0,
      closeGraceTerminations: 0,
      upgradesRefused: { pending: 0, per_ip: 0, handshake_rate: 0 },
    });
    const stats = body as { messagesOut: number; bytesOut: number; bytesIn: number; uptimeSeconds: number };
    expect(stats.messagesOut).toBe(4); // two login replies, one push, one error reply
    expect(stats.bytesIn).toBeGreaterThan(0);
    expect(stats.uptimeSeconds).toBeGreaterThanOrEqual(0);
  });

  it('GET /healthz and /readyz answer without a key', async () => {
    expect(await call('GET', '/healthz', undefined, { key: null })).toMatchObject({
      status: 200,
      body: { status: 'ok' },
    });
    expect(await call('GET', '/readyz', undefined, { key: null })).toMatchObject({
      status: 200,
      body: { status: 'ready' },
    });
  });

  it('GET /metrics serves Prometheus text', async () => {
    await client('a');
    await call('POST', '/v1/push', { uid: 'nobody', data: 'x' });
    const res = await call('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = res.body as string;
    expect(text).toMatch(/^uidpush_connections 1$/m);
    expect(text).toMatch(/^uidpush_online_uids 1$/m);
    expect(text).toMatch(/^uidpush_dropped_total\{reason="offline"\} 1$/m);
    expect(text).toMatch(/^uidpush_messages_in_total 1$/m);
    expect(text).toMatch(/^uidpush_bytes_out_total \d+$/m);
    expect(text).toMatch(/^uidpush_heartbeat_closes_total 0$/m);
    expect(text).toMatch(/uidpush_api_request_duration_seconds_bucket\{.*route="\/v1\/push".*\}/);
    expect(text).toMatch(/^uidpush_process_resident_memory_bytes \d+/m);
  });
});

describe('bad requests get a 4xx JSON error and never touch delivery', () => {
  let alice: TestClient;
  beforeEach(async () => {
    alice = await client('alice');
  });
  afterEach(async () => {
    await alice.nothingFor(50);
    expect(started.server.local.delivery.framesWritten).toBe(1); // the login reply only
  });

  const cases: [string, string, string, unknown, { key?: string | null; raw?: string; contentType?: string }, number, string][] = [
    ['no key', 'POST', '/v1/push', { uid: 'alice', data: 'x' }, { key: null }, 401, 'unauthorized'],
    ['a wrong key', 'POST', '/v1/push', { uid: 'alice', data: 'x' }, { key: 'wrong-key-0123456789' }, 401, 'unauthorized'],
    ['no key on /metrics', 'GET', '/metrics', undefined, { key: null }, 401, 'unauthorized'],
    ['malformed JSON', 'POST', '/v1/push', undefined, { raw: '{"uid": "alice", "data": ' }, 400, 'bad_request'],
    ['an empty JSON body', 'POST', '/v1/push', undefined, { raw: '' }, 400, 'bad_request'],
    ['a body that is not an object', 'POST', '/v1/push', ['alice'], {}, 400, 'bad_request'],
    ['a uid that is not a string', 'POST', '/v1/push', { uid: 42, data: 'x' }, {}, 400, 'bad_request'],
    ['uids that are not strings', 'POST', '/v1/push', { uids: ['alice', 7], data: 'x' }, {}, 400, 'bad_request'],
    ['an empty uids list', 'POST', '/v1/push', { uids: [], data: 'x' }, {}, 400, 'bad_request'],
    ['missing data', 'POST', '/v1/push', { uid: 'alice' }, {}, 400, 'bad_request'],
    ['neither uid nor uids', 'POST', '/v1/push', { data: 'x' }, {}, 400, 'bad_request'],
    ['both uid and uids', 'POST', '/v1/push', { uid: 'alice', uids: ['alice'], data: 'x' }, {}, 400, 'bad_request'],
    ['an unknown field', 'POST', '/v1/push', { uid: 'alice', data: 'x', ttl: 5 }, {}, 400, 'bad_request'],
    ['an empty uid', 'POST', '/v1/push', { uid: '', data: 'x' }, {}, 400, 'bad_request'],
    ['a uid over the cap', 'POST', '/v1/push', { uid: 'a'.repeat(129), data: 'x' }, {}, 400, 'bad_request'],
    ['an empty uid in uids', 'POST', '/v1/push', { uids: ['alice', ''], data: 'x' }, {}, 400, 'bad_request'],
    ['a body over the limit', 'POST', '/v1/push', { uid: 'alice', data: 'x'.repeat(1024 * 1024) }, {}, 413, 'too_large'],
    [
      'a body that is not JSON',
      'POST',
      '/v1/push',
      undefined,
      { raw: 'alice:x', contentType: 'text/plain' },
      415,
      'unsupported_media_type',
    ],
    ['broadcast without data', 'POST', '/v1/broadcast', {}, {}, 400, 'bad_request'],
    ['broadcast with a wrong field', 'POST', '/v1/broadcast', { data: 'x', to: 'all' }, {}, 400, 'bad_request'],
    ['a uid over the cap in the path', 'GET', `/v1/users/${'a'.repeat(129)}`, undefined, {}, 400, 'bad_request'],
    ['a path that is not valid percent-encoding', 'GET', '/v1/users/%E0%A4%A', undefined, {}, 400, 'bad_request'],
    ['a uid far over the cap in the path', 'GET', `/v1/users/${'a'.repeat(2000)}`, undefined, {}, 414, 'bad_request'],
    ['a limit that is not a number', 'GET', '/v1/users?limit=ten', undefined, {}, 400, 'bad_request'],
    ['a limit out of range', 'GET', '/v1/users?limit=0', undefined, {}, 400, 'bad_request'],
    ['a cursor the server did not make', 'GET', '/v1/users?cursor=forged', undefined, {}, 400, 'bad_request'],
    ['a kick reason that is not a string', 'POST', '/v1/users/alice/kick', { reason: 5 }, {}, 400, 'bad_request'],
    ['a kick reason over 123 bytes', 'POST', '/v1/users/alice/kick', { reason: 'é'.repeat(62) }, {}, 400, 'bad_request'],
    ['an unknown route', 'GET', '/v1/nope', undefined, {}, 404, 'not_found'],
    ['an unversioned route', 'POST', '/push', { uid: 'alice', data: 'x' }, {}, 404, 'not_found'],
    ['a wrong method', 'GET', '/v1/push', undefined, {}, 405, 'method_not_allowed'],
    ['a wrong method on a user', 'DELETE', '/v1/users/alice', undefined, {}, 405, 'method_not_allowed'],
  ];

  it.each(cases)('%s', async (_name, method, path, body, init, status, code) => {
    const res = await call(method, path, body, init);
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ error: { code, message: expect.any(String) as string } });
    expect(started.server.local.isOnline('alice')).toBe(true);
  });

  it('lists the allowed methods on a 405', async () => {
    const res = await call('PUT', '/v1/push', { uid: 'alice', data: 'x' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });

  it('asks for a Bearer key on a 401', async () => {
    const res = await call('GET', '/v1/stats', undefined, { key: null });
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
  });
});

describe('API configuration', () => {
  it('refuses to start with the API on a non-loopback address and no key', () => {
    expect(() => createServer({ apiHost: '0.0.0.0', apiPort: 0 })).toThrow(
      /apiKey: an API key \(apiKey\) is required when the server API listens on a non-loopback address/,
    );
    expect(() => createServer({ apiHost: '0.0.0.0', apiPort: 0, apiKey: KEY })).not.toThrow();
    expect(() => createServer({ apiHost: '::1', apiPort: 0 })).not.toThrow();
    // Embedded, the API is off unless given a port: then its address needs no key.
    expect(() => createServer({ apiHost: '0.0.0.0' })).not.toThrow();
    expect(() => createServer({ apiKey: 'short' })).toThrow(/apiKey/);
  });

  it('serves every route without a key on loopback when none is set', async () => {
    await started.stop();
    await setup({ apiKey: undefined });
    const a = await client('a');
    expect((await call('POST', '/v1/push', { uid: 'a', data: 'open' }, { key: null })).status).toBe(200);
    expect(await a.next()).toBe('open');
  });

  it('turns the API off with apiPort null', async () => {
    await started.stop();
    started = await startServer({ apiPort: null });
    expect(started.server.address().api).toBeUndefined();
  });

  it('reports not ready once shutting down', async () => {
    const closing = started.server.close();
    expect(started.server.ready()).toBe(false);
    // The event is the close itself: once it settled, the server is still not ready.
    await closing;
    expect(started.server.ready()).toBe(false);
  });
});

import { decodeJwt } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PushClient } from '../../src/api-client/index.js';
import { runCli } from '../helpers/cli.js';
import { connect, connectV1, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { SECRET } from '../helpers/tokens.js';

const KEY = 'groups-test-key-0123456789';
let started: Started;
let api: string;
let client: PushClient;
const clients: TestClient[] = [];

beforeEach(async () => {
  started = await startServer({ apiKey: KEY });
  api = `http://127.0.0.1:${started.server.address().api?.port ?? 0}`;
  client = new PushClient({ url: api, apiKey: KEY });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started.stop();
});

async function seed(uid: string): Promise<TestClient> {
  const c = await connect(started.url);
  clients.push(c);
  return c.login(uid);
}
async function v1(uid: string): Promise<TestClient> {
  const c = await connectV1(started.url);
  clients.push(c);
  c.sendJson({ type: 'auth', uid });
  await c.nextJson();
  return c;
}
async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('group routes', () => {
  it('PUT and DELETE members, GET the group, POST a push to both protocols', async () => {
    const a = await seed('a');
    const b = await v1('b');
    await seed('c');
    expect(await call('PUT', '/v1/groups/team/members/a')).toEqual({ status: 200, body: { group: 'team', uid: 'a', added: true } });
    expect((await call('PUT', '/v1/groups/team/members/a')).body).toMatchObject({ added: false });
    await call('PUT', '/v1/groups/team/members/b');
    await call('PUT', '/v1/groups/team/members/offline-user');
    expect((await call('GET', '/v1/groups/team')).body).toEqual({ group: 'team', members: 3, online: 2, connections: 2 });
    expect(await call('POST', '/v1/groups/team/push', { data: { standup: '10:00' } })).toEqual({
      status: 200,
      body: { online: 2, connections: 2 },
    });
    expect(await a.next()).toBe('{"standup":"10:00"}');
    expect(await b.nextJson()).toEqual({ type: 'message', scope: 'group', from: null, to: 'team', data: { standup: '10:00' } });
    expect(await call('DELETE', '/v1/groups/team/members/a')).toEqual({ status: 200, body: { group: 'team', uid: 'a', removed: true } });
    await call('POST', '/v1/groups/team/push', { data: 'x' });
    await a.nothingFor(50);
    expect((await call('GET', '/v1/groups/empty')).body).toEqual({ group: 'empty', members: 0, online: 0, connections: 0 });
  });

  it('keeps membership made through the API for a uid that connects later', async () => {
    await call('PUT', '/v1/groups/later/members/z');
    const z = await seed('z');
    await call('POST', '/v1/groups/later/push', { data: 'hi z' });
    expect(await z.next()).toBe('hi z');
  });

  it('refuses bad group requests with 4xx JSON errors', async () => {
    expect(await call('POST', '/v1/groups/g/push', {})).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });
    expect(await call('PUT', `/v1/groups/${'g'.repeat(129)}/members/a`)).toMatchObject({ status: 400 });
    expect(await call('POST', '/v1/groups/g/members/a', {})).toMatchObject({
      status: 405,
      body: { error: { code: 'method_not_allowed' } },
    });
    expect(await call('DELETE', '/v1/groups/g')).toMatchObject({ status: 405 });
  });

  it('PushClient: addToGroup, group, pushToGroup, removeFromGroup', async () => {
    const a = await seed('a');
    expect(await client.addToGroup('crew', 'a')).toEqual({ group: 'crew', uid: 'a', added: true });
    expect(await client.group('crew')).toEqual({ group: 'crew', members: 1, online: 1, connections: 1 });
    expect(await client.pushToGroup('crew', 'ahoy')).toEqual({ online: 1, connections: 1 });
    expect(await a.next()).toBe('ahoy');
    expect(await client.removeFromGroup('crew', 'a')).toEqual({ group: 'crew', uid: 'a', removed: true });
    expect(await client.group('crew')).toMatchObject({ members: 0 });
  });
});

const cli = runCli;

describe('CLI group and token commands', { timeout: 60_000 }, () => {
  it('group add, show, push, remove, leave-all', async () => {
    const a = await seed('a');
    const env = { UIDPUSH_API_URL: api, UIDPUSH_API_KEY: KEY };
    expect(JSON.parse((await cli(['group', 'add', 'ops', 'a'], env)).stdout)).toEqual({ group: 'ops', uid: 'a', added: true });
    expect(JSON.parse((await cli(['group', 'show', 'ops'], env)).stdout)).toEqual({ group: 'ops', members: 1, online: 1, connections: 1 });
    expect(JSON.parse((await cli(['group', 'push', 'ops', 'deploy done'], env)).stdout)).toEqual({ online: 1, connections: 1 });
    expect(await a.next()).toBe('deploy done');
    expect(JSON.parse((await cli(['group', 'remove', 'ops', 'a'], env)).stdout)).toMatchObject({ removed: true });
    await cli(['group', 'add', 'ops', 'a'], env);
    await cli(['group', 'add', 'dev', 'a'], env);
    expect(JSON.parse((await cli(['group', 'leave-all', 'a'], env)).stdout)).toEqual({ uid: 'a', left: 2 });
    expect((await cli(['group', 'frobnicate'], env)).code).toBe(2);
  });

  it('token mints an HS256 token a server with that secret accepts', async () => {
    const out = await cli(['token', 'tok-user', '--groups', 'a,b', '--rights', 'send,publish', '--ttl', '1h'], {
      UIDPUSH_JWT_SECRET: SECRET,
    });
    expect(out.code).toBe(0);
    const token = out.stdout.trim();
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'tok-user', groups: ['a', 'b'], rights: ['send', 'publish'] });
    expect((claims.exp ?? 0) - Math.floor(Date.now() / 1000)).toBeGreaterThan(3590);
    const secure = await startServer({ jwtSecret: SECRET, apiPort: null });
    try {
      const c = await connectV1(secure.url);
      clients.push(c);
      c.sendJson({ type: 'auth', token });
      expect(await c.nextJson()).toMatchObject({ type: 'welcome', uid: 'tok-user' });
      c.sendJson({ type: 'join', id: 1, group: 'b' });
      expect(await c.nextJson()).toMatchObject({ type: 'ack', id: 1 });
      c.close();
      await c.closed();
    } finally {
      await secure.stop();
    }
  });

  it('token refuses a missing secret, unknown rights and a bad ttl', async () => {
    expect((await cli(['token', 'u'], { UIDPUSH_JWT_SECRET: '' })).stderr).toMatch(/needs the HS256 secret/);
    expect((await cli(['token', 'u', '--rights', 'fly'], { UIDPUSH_JWT_SECRET: SECRET })).stderr).toMatch(/--rights: unknown fly/);
    expect((await cli(['token', 'u', '--ttl', 'soon'], { UIDPUSH_JWT_SECRET: SECRET })).stderr).toMatch(/--ttl/);
  });
});

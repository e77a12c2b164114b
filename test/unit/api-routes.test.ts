import { describe, expect, it } from 'vitest';
import { createApi } from '../../src/api/http.js';
import { ErrorCode, ProgramErrorCode, UidpushError, UnavailableError } from '../../src/core/errors.js';
import { MAX_AWAIT_ACKS, MAX_AWAIT_MS, type InboxInfo } from '../../src/core/inbox.js';
import type { PushService } from '../../src/core/service.js';

const KEY = 'unit-key';
const auth = { authorization: `Bearer ${KEY}` };
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const INBOX: InboxInfo = {
  uid: 'alice',
  epoch: 'k3j9x0a1b2c3',
  top: 42,
  retained: { from: 1, to: 42, count: 42 },
  devices: [{ device: 'phone', cursor: 40, lastSeen: 1764680000000 }],
};

/** A PushService whose answers a test sets, recording what the routes asked of it. */
function fakeService(overrides: Partial<PushService> = {}): PushService & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  const record =
    <T>(name: string, value: T) =>
    (...args: unknown[]): T => {
      calls.push([name, ...args]);
      return value;
    };
  return {
    calls,
    pushToUids: record('pushToUids', { online: 1, connections: 2 }),
    broadcast: record('broadcast', { connections: 3 }),
    publish: record('publish', { online: 1, connections: 1 }),
    join: record('join', true),
    leave: record('leave', false),
    leaveAll: record('leaveAll', 2),
    groupInfo: (group) => ({ group, members: 2, online: 1, connections: 1 }),
    connectionsOf: record('connectionsOf', 2),
    listUids: record('listUids', { uids: ['a'], nextCursor: null }),
    kick: record('kick', 1),
    revokeTokens: record('revokeTokens', { before: 1000, until: 2000 }),
    inboxOf: record('inboxOf', INBOX),
    stats: () => ({}) as ReturnType<PushService['stats']>,
    ready: () => true,
    ...overrides,
  };
}

function api(service: PushService, apiKey: string | undefined) {
  return createApi({
    service,
    metrics: {
      observeApiRequest() {},
      internalError() {},
      contentType: 'text/plain; version=0.0.4',
      exposition: () => Promise.resolve('up 1\n'),
    },
    apiKey,
    maxUids: 3,
    maxUidLength: 16,
    maxJsonDepth: 4,
    bodyLimit: 256,
    limits: { headersTimeout: 1000, requestTimeout: 1000, keepAliveTimeout: 1000, maxConnections: 10 },
    logger: quiet,
  });
}

describe('server API routes on a fake PushService', () => {
  it('pushes to one uid or many, and passes the data through', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    const one = await app.inject({ method: 'POST', url: '/v1/push', headers: auth, payload: { uid: 'alice', data: { n: 1 } } });
    expect([one.statusCode, one.json()]).toEqual([200, { online: 1, connections: 2 }]);
    await app.inject({ method: 'POST', url: '/v1/push', headers: auth, payload: { uids: ['a', 'b'], data: 'x' } });
    expect(service.calls).toEqual([
      ['pushToUids', ['alice'], { n: 1 }, {}],
      ['pushToUids', ['a', 'b'], 'x', {}],
    ]);
  });

  it('refuses bad JSON, wrong types, both uid and uids, too many uids, bad names, deep data, oversize and non-JSON bodies', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    const post = (payload: string, type = 'application/json') =>
      app.inject({ method: 'POST', url: '/v1/push', headers: { ...auth, 'content-type': type }, payload });
    const cases: [string, number, string][] = [
      ['{"uid":', 400, ErrorCode.BadRequest],
      ['{"uid":1,"data":1}', 400, ErrorCode.BadRequest],
      ['{"uid":"a","uids":["b"],"data":1}', 400, ErrorCode.BadRequest],
      ['{"uids":["a","b","c","d"],"data":1}', 400, ErrorCode.BadRequest],
      ['{"uid":"all","data":1}', 400, ErrorCode.BadRequest],
      ['{"uid":"a","data":[[[[[1]]]]]}', 400, ErrorCode.BadRequest],
      [`{"uid":"a","data":"${'x'.repeat(300)}"}`, 413, ErrorCode.TooLarge],
    ];
    for (const [body, status, code] of cases) {
      const res = await post(body);
      expect([body.slice(0, 40), res.statusCode, res.json<{ error: { code: string } }>().error.code]).toEqual([
        body.slice(0, 40),
        status,
        code,
      ]);
    }
    expect((await post('hi', 'text/plain')).statusCode).toBe(415);
    expect(service.calls).toEqual([]);
  });

  it('asks for the key on every route but health, and answers 405 with Allow for other methods', async () => {
    const app = api(fakeService(), KEY);
    const missing = await app.inject({ method: 'POST', url: '/v1/broadcast', payload: { data: 1 } });
    expect([missing.statusCode, missing.headers['www-authenticate']]).toEqual([401, 'Bearer']);
    const wrong = await app.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: 'Bearer nope' } });
    expect(wrong.statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({ status: 'ok' });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ready' });
    const method = await app.inject({ method: 'GET', url: '/v1/push', headers: auth });
    expect([method.statusCode, method.headers.allow]).toEqual([405, 'POST']);
    expect((await app.inject({ method: 'GET', url: '/nowhere', headers: auth })).statusCode).toBe(404);
  });

  it('refuses, without a key, a Host that is not loopback and a foreign Origin', async () => {
    const app = api(fakeService(), undefined);
    expect((await app.inject({ method: 'GET', url: '/v1/stats', headers: { host: '127.0.0.1:1235' } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/stats', headers: { host: 'evil.example' } })).statusCode).toBe(403);
    const origin = await app.inject({ method: 'GET', url: '/v1/stats', headers: { host: '127.0.0.1', origin: 'https://evil.example' } });
    expect(origin.statusCode).toBe(403);
  });

  it('maps the service errors: unavailable 503 with Retry-After, invalid argument 400, a cap 409, a bug 500', async () => {
    const limit = new UidpushError(ProgramErrorCode.LimitExceeded, 'full');
    const app = api(
      fakeService({
        broadcast: () => Promise.reject(new UnavailableError('broker down')),
        listUids: () => {
          throw new UidpushError(ProgramErrorCode.InvalidArgument, 'bad cursor');
        },
        join: () => Promise.reject(limit),
        stats: () => {
          throw new Error('bug');
        },
      }),
      KEY,
    );
    const down = await app.inject({ method: 'POST', url: '/v1/broadcast', headers: auth, payload: { data: 1 } });
    expect([down.statusCode, down.headers['retry-after'], down.json<{ error: { code: string } }>().error.code]).toEqual([
      503,
      '1',
      ErrorCode.Unavailable,
    ]);
    expect((await app.inject({ method: 'GET', url: '/v1/users?cursor=zz', headers: auth })).statusCode).toBe(400);
    const full = await app.inject({ method: 'PUT', url: '/v1/groups/news/members/alice', headers: auth });
    expect([full.statusCode, full.json<{ error: { code: string } }>().error.code]).toEqual([409, ErrorCode.LimitExceeded]);
    const bug = await app.inject({ method: 'GET', url: '/v1/stats', headers: auth });
    expect([bug.statusCode, bug.json()]).toEqual([500, { error: { code: ErrorCode.Internal, message: 'internal error' } }]);
  });

  it('passes a degraded answer through, and answers readyz 503 when the service is not ready', async () => {
    const app = api(fakeService({ publish: () => ({ online: 1, connections: 1, degraded: true }), ready: () => false }), KEY);
    const res = await app.inject({ method: 'POST', url: '/v1/groups/news/push', headers: auth, payload: { data: 'x' } });
    expect(res.json()).toEqual({ online: 1, connections: 1, degraded: true });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect([ready.statusCode, ready.json()]).toEqual([503, { status: 'not_ready' }]);
  });

  it('serves users, kick with revocation, groups and metrics', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    const get = async (url: string) => (await app.inject({ method: 'GET', url, headers: auth })).json<unknown>();
    expect(await get('/v1/users/alice')).toEqual({ uid: 'alice', online: true, connections: 2 });
    expect(await get('/v1/users?limit=5')).toEqual({ uids: ['a'], nextCursor: null });
    expect((await app.inject({ method: 'GET', url: '/v1/users?limit=0', headers: auth })).statusCode).toBe(400);
    const kick = await app.inject({ method: 'POST', url: '/v1/users/alice/kick', headers: auth, payload: { revokeTokens: true } });
    expect(kick.json()).toEqual({ uid: 'alice', kicked: 1, revoked: { before: 1000, until: 2000 } });
    expect(await get('/v1/groups/news')).toEqual({ group: 'news', members: 2, online: 1, connections: 1 });
    const leave = await app.inject({ method: 'DELETE', url: '/v1/groups/news/members/alice', headers: auth });
    expect(leave.json()).toEqual({ group: 'news', uid: 'alice', removed: false });
    expect((await app.inject({ method: 'DELETE', url: '/v1/users/alice/groups', headers: auth })).json()).toEqual({
      uid: 'alice',
      left: 2,
    });
    const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: auth });
    expect([metrics.body, metrics.headers['content-type']]).toEqual(['up 1\n', 'text/plain; version=0.0.4']);
    expect(service.calls).toContainEqual(['revokeTokens', 'alice']);
    expect(service.calls.findIndex((c) => c[0] === 'revokeTokens')).toBeLessThan(service.calls.findIndex((c) => c[0] === 'kick'));
  });

  it('passes delivery, idempotencyKey and await to pushToUids exactly, and the result as is', async () => {
    const result = { online: 1, connections: 1, offset: 7, epoch: 'k3j9x0a1b2c3', acked: ['phone'], undelivered: false };
    const service = fakeService({
      pushToUids: (...args) => {
        service.calls.push(['pushToUids', ...args]);
        return result;
      },
    });
    const app = api(service, KEY);
    const push = (payload: object) => app.inject({ method: 'POST', url: '/v1/push', headers: auth, payload });
    const one = await push({ uid: 'alice', data: 1, delivery: 'durable', idempotencyKey: 'order-7', await: { acked: 2, timeoutMs: 500 } });
    expect([one.statusCode, one.json()]).toEqual([200, result]);
    await push({ uid: 'alice', data: 1, await: { timeoutMs: MAX_AWAIT_MS } });
    await push({ uids: ['a', 'b'], data: 2, delivery: 'latest:score' });
    await push({ uids: ['a'], data: 3, delivery: 'ephemeral', idempotencyKey: 'k' });
    await push({ uid: 'alice', data: 4, delivery: 'latest:score', await: { acked: MAX_AWAIT_ACKS, timeoutMs: 1 } });
    expect(service.calls).toEqual([
      ['pushToUids', ['alice'], 1, { delivery: { kind: 'durable' }, idempotencyKey: 'order-7', await: { acked: 2, timeoutMs: 500 } }],
      ['pushToUids', ['alice'], 1, { await: { acked: 1, timeoutMs: MAX_AWAIT_MS } }],
      ['pushToUids', ['a', 'b'], 2, { delivery: { kind: 'latest', key: 'score' } }],
      ['pushToUids', ['a'], 3, { delivery: { kind: 'ephemeral' }, idempotencyKey: 'k' }],
      ['pushToUids', ['alice'], 4, { delivery: { kind: 'latest', key: 'score' }, await: { acked: MAX_AWAIT_ACKS, timeoutMs: 1 } }],
    ]);
  });

  it('refuses bad delivery, idempotencyKey and await with a 400 naming the field, before pushing', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    const refused = async (payload: object): Promise<string> => {
      const res = await app.inject({ method: 'POST', url: '/v1/push', headers: auth, payload });
      const { error } = res.json<{ error: { code: string; message: string } }>();
      expect([res.statusCode, error.code]).toEqual([400, ErrorCode.BadRequest]);
      return error.message;
    };
    const cases: [object, string | RegExp][] = [
      [{ uid: 'a', data: 1, delivery: 'sometimes' }, /^body\/delivery: unknown delivery class "sometimes"/],
      [{ uid: 'a', data: 1, delivery: 'latest:' }, 'body/delivery: latest key is empty'],
      [{ uid: 'a', data: 1, delivery: `latest:${'k'.repeat(129)}` }, 'body/delivery: latest key is over 128 bytes'],
      [{ uid: 'a', data: 1, idempotencyKey: '' }, 'body/idempotencyKey: idempotencyKey is empty'],
      [{ uid: 'a', data: 1, idempotencyKey: 'é'.repeat(65) }, 'body/idempotencyKey: idempotencyKey is over 128 bytes'],
      [{ uids: ['a'], data: 1, await: { timeoutMs: 100 } }, 'body/await: needs one uid (uid, not uids)'],
      [{ uid: 'a', data: 1, delivery: 'ephemeral', await: { timeoutMs: 100 } }, 'body/await: an ephemeral push cannot be acked'],
      [{ uid: 'a', data: 1, await: { timeoutMs: MAX_AWAIT_MS + 1 } }, `body/await/timeoutMs must be <= ${MAX_AWAIT_MS}`],
      [{ uid: 'a', data: 1, await: { acked: MAX_AWAIT_ACKS + 1, timeoutMs: 1 } }, `body/await/acked must be <= ${MAX_AWAIT_ACKS}`],
      [{ uid: 'a', data: 1, await: { timeoutMs: 0 } }, 'body/await/timeoutMs must be >= 1'],
      [{ uid: 'a', data: 1, await: { acked: 0, timeoutMs: 1 } }, 'body/await/acked must be >= 1'],
      [{ uid: 'a', data: 1, await: { timeoutMs: 1.5 } }, 'body/await/timeoutMs must be integer'],
      [{ uid: 'a', data: 1, await: { acked: 1 } }, "body/await must have required property 'timeoutMs'"],
      [{ uid: 'a', data: 1, await: { timeoutMs: 1, extra: true } }, 'body/await must NOT have additional properties'],
      [{ uid: 'a', data: 1, delivery: 1 }, 'body/delivery must be string'],
      [{ uid: 'a', data: 1, retain: true }, 'body must NOT have additional properties'],
    ];
    for (const [payload, message] of cases) {
      const got = await refused(payload);
      if (typeof message === 'string') expect(got, JSON.stringify(payload)).toBe(message);
      else expect(got, JSON.stringify(payload)).toMatch(message);
    }
    expect(service.calls).toEqual([]);
  });

  it('keeps group pushes and broadcasts to { data }: no delivery options there', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    for (const url of ['/v1/broadcast', '/v1/groups/news/push']) {
      const res = await app.inject({ method: 'POST', url, headers: auth, payload: { data: 1, delivery: 'durable' } });
      expect([url, res.statusCode]).toEqual([url, 400]);
    }
    expect(service.calls).toEqual([]);
  });

  it("answers a service's invalid argument (a retained push with the inbox off) 400 with its message", async () => {
    const message = 'delivery durable needs the inbox (--inbox)';
    const thrown = api(
      fakeService({
        pushToUids: () => {
          throw new UidpushError(ProgramErrorCode.InvalidArgument, message);
        },
      }),
      KEY,
    );
    const rejected = api(
      fakeService({ pushToUids: () => Promise.reject(new UidpushError(ProgramErrorCode.InvalidArgument, message)) }),
      KEY,
    );
    for (const app of [thrown, rejected]) {
      const res = await app.inject({ method: 'POST', url: '/v1/push', headers: auth, payload: { uid: 'a', data: 1, delivery: 'durable' } });
      expect([res.statusCode, res.json()]).toEqual([400, { error: { code: ErrorCode.BadRequest, message } }]);
    }
  });

  it('serves a uid inbox, checks its name, and answers 405 for other methods', async () => {
    const service = fakeService();
    const app = api(service, KEY);
    const res = await app.inject({ method: 'GET', url: '/v1/users/alice/inbox', headers: auth });
    expect([res.statusCode, res.json()]).toEqual([200, INBOX]);
    const none: InboxInfo = { uid: 'bob', epoch: null, top: 0, retained: { from: 1, to: 0, count: 0 }, devices: [] };
    const empty = api(fakeService({ inboxOf: () => Promise.resolve(none) }), KEY);
    expect((await empty.inject({ method: 'GET', url: '/v1/users/bob/inbox', headers: auth })).json()).toEqual(none);
    const bad = await app.inject({ method: 'GET', url: '/v1/users/all/inbox', headers: auth });
    expect([bad.statusCode, bad.json<{ error: { code: string; message: string } }>().error]).toEqual([
      400,
      { code: ErrorCode.BadRequest, message: expect.stringMatching(/^params\/uid: /) as unknown },
    ]);
    const method = await app.inject({ method: 'POST', url: '/v1/users/alice/inbox', headers: auth, payload: {} });
    expect([method.statusCode, method.headers.allow]).toEqual([405, 'GET, HEAD']);
    expect(service.calls).toEqual([['inboxOf', 'alice']]);
  });
});

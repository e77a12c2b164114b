import { afterEach, describe, expect, it } from 'vitest';
import { testBed, type TestClient } from '../helpers/clients.js';
import { innerClient, type InnerClient } from '../helpers/inner.js';
import { hs256, SECRET } from '../helpers/tokens.js';

// Issue 9, items 1 and 8: client JSON that nests without bound, invalid request ids, and
// `__proto__` keys, on every entry point that takes client JSON.

const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);
/** The frame of the issue: 2.8 KB that ended the process before any auth. */
const ATTACK = `{"type":"broadcast","data":${nested(1400)}}`;
const DEEP_ERROR = { type: 'error', code: 'bad_request', message: 'data nested deeper than 32 levels' };

const bed = testBed();
afterEach(bed.cleanup);

const setup = bed.setup;
const v1 = (uid?: string): Promise<TestClient> => bed.v1(bed.started().url, uid);
const seed = (uid: string): Promise<TestClient> => bed.client(bed.started().url, uid);
function apiUrl(): string {
  return `http://127.0.0.1:${bed.started().server.address().api?.port ?? 0}`;
}
async function post(path: string, body: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${apiUrl()}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, body: await res.json() };
}
async function inner(): Promise<InnerClient> {
  return bed.track(await innerClient(bed.started().server.address().inner?.port ?? 0));
}

describe('nesting limit on uidpush.v1 frames', () => {
  it('answers the 1,400-deep frame before auth with bad_request; the connection logs in and a bystander is served', async () => {
    await setup();
    const bystander = await seed('bystander');
    const attacker = await v1();
    attacker.send(ATTACK);
    expect(await attacker.nextJson()).toEqual(DEEP_ERROR);
    attacker.sendJson({ type: 'auth', id: 1, uid: 'attacker' });
    expect(await attacker.nextJson()).toMatchObject({ type: 'welcome', uid: 'attacker', id: 1 });
    attacker.sendJson({ type: 'send', to: 'bystander', data: 'still served' });
    expect(await bystander.next()).toBe('still served');
  });

  it('answers it after auth with bad_request, delivers nothing, and the connection stays usable', async () => {
    const { server } = await setup();
    const bystander = await v1('bystander');
    const attacker = await v1('attacker');
    for (let i = 0; i < 10; i++) attacker.send(ATTACK);
    for (let i = 0; i < 10; i++) expect(await attacker.nextJson()).toEqual(DEEP_ERROR);
    await bystander.nothingFor(50);
    attacker.sendJson({ type: 'send', id: 2, to: 'bystander', data: 'after' });
    expect(await bystander.nextJson()).toMatchObject({ type: 'message', from: 'attacker', data: 'after' });
    expect(await attacker.nextJson()).toEqual({ type: 'ack', id: 2, result: { online: true, connections: 1 } });
    expect(server.stats()).toMatchObject({ dropped: { bad_request: 10 } });
  });

  it('answers it with bad_request when auth is on, before the auth frame and after it', async () => {
    await setup({ jwtSecret: SECRET });
    const bystander = await bed.client(bed.started().url);
    bystander.send(await hs256({ sub: 'bystander' }));
    expect(await bystander.next()).toBe('login success, your uid is bystander');
    const attacker = await v1();
    attacker.send(ATTACK);
    expect(await attacker.nextJson()).toEqual(DEEP_ERROR);
    attacker.sendJson({ type: 'auth', id: 'a', token: await hs256({ sub: 'attacker' }) });
    expect(await attacker.nextJson()).toMatchObject({ type: 'welcome', uid: 'attacker', id: 'a' });
    attacker.send(ATTACK);
    expect(await attacker.nextJson()).toEqual(DEEP_ERROR);
    attacker.sendJson({ type: 'send', to: 'bystander', data: { ok: true } });
    expect(await bystander.next()).toBe('{"ok":true}');
  });

  it('delivers data nested exactly maxJsonDepth levels and refuses one level more', async () => {
    await setup({ maxJsonDepth: 4 });
    const bob = await v1('bob');
    const alice = await v1('alice');
    alice.send(`{"type":"send","id":1,"to":"bob","data":{"a":[[{"b":1}]]}}`);
    expect(await bob.nextJson()).toMatchObject({ data: { a: [[{ b: 1 }]] } });
    expect(await alice.nextJson()).toMatchObject({ type: 'ack', id: 1 });
    alice.send(`{"type":"send","id":2,"to":"bob","data":{"a":[[{"b":[]}]]}}`);
    expect(await alice.nextJson()).toEqual({ type: 'error', code: 'bad_request', message: 'data nested deeper than 4 levels' });
    // Brackets in strings are text, not nesting.
    alice.sendJson({ type: 'send', id: 3, to: 'bob', data: { text: `"${nested(50)}\\"[[[[` } });
    expect(await bob.nextJson()).toMatchObject({ data: { text: `"${nested(50)}\\"[[[[` } });
    expect(await alice.nextJson()).toMatchObject({ type: 'ack', id: 3 });
  });

  it('takes a seed message of 1,400 brackets as text and delivers it verbatim to both protocols', async () => {
    await setup();
    const seedBob = await seed('bob');
    const v1Bob = await v1('bob');
    const alice = await seed('alice');
    alice.send(`bob:${nested(1400)}`);
    expect(await seedBob.next()).toBe(nested(1400));
    expect(await v1Bob.nextJson()).toMatchObject({ type: 'message', from: 'alice', data: nested(1400) });
  });
});

describe('nesting limit on the server API', () => {
  for (const [route, body] of [
    ['/v1/push', `{"uid":"bystander","data":${nested(1400)}}`],
    ['/v1/push', `{"uids":["bystander"],"data":{"x":${nested(6000)}}}`],
    ['/v1/broadcast', `{"data":${nested(6000)}}`],
    ['/v1/groups/room/push', `{"data":${nested(1400)}}`],
  ] as const) {
    it(`answers a deep body on ${route} with 400 bad_request and delivers nothing (${body.length} bytes)`, async () => {
      const { server } = await setup();
      const bystander = await seed('bystander');
      await server.join('room', 'bystander');
      expect(await post(route, body)).toEqual({
        status: 400,
        body: { error: { code: 'bad_request', message: 'body: data nested deeper than 32 levels' } },
      });
      await bystander.nothingFor(50);
      expect(await post(route, route === '/v1/push' ? '{"uid":"bystander","data":"next"}' : '{"data":"next"}')).toMatchObject({
        status: 200,
      });
      expect(await bystander.next()).toBe('next');
    });
  }

  it('delivers a body whose data nests exactly maxJsonDepth levels', async () => {
    await setup({ maxJsonDepth: 3 });
    const bob = await v1('bob');
    expect(await post('/v1/push', '{"uid":"bob","data":[{"a":[1]}]}')).toEqual({ status: 200, body: { online: 1, connections: 1 } });
    expect(await bob.nextJson()).toMatchObject({ data: [{ a: [1] }] });
    expect(await post('/v1/push', '{"uid":"bob","data":[{"a":[[1]]}]}')).toMatchObject({ status: 400 });
  });
});

describe('nesting limit on the inner text port', () => {
  it('answers a deep line with error bad_request; the next line on the connection is pushed', async () => {
    await setup({ innerPort: 0 });
    const bystander = await seed('bystander');
    const port = await inner();
    port.send(`{"uid":"bystander","data":${nested(1400)}}\n`);
    expect(await port.answer()).toBe('error bad_request');
    await bystander.nothingFor(50);
    // 32 levels, the line's own object included, is within the limit.
    const line = `{"uid":"bystander","data":${nested(31)}}`;
    port.send(`${line}\n`);
    expect(await port.answer()).toBe('ok');
    expect(await bystander.next()).toBe(line);
    port.send(`{"uid":"bystander","data":${nested(32)}}\n`);
    expect(await port.answer()).toBe('error bad_request');
  });
});

describe('request ids of uidpush.v1', () => {
  it('never echoes an invalid id: a 60 KB id does not come back', async () => {
    await setup();
    const c = await v1('alice');
    const huge = 'i'.repeat(60_000);
    c.sendJson({ type: 'ping', id: huge });
    const error = await c.next();
    expect(error.length).toBeLessThan(200);
    expect(JSON.parse(error)).toEqual({ type: 'error', code: 'bad_request', message: expect.stringMatching(/^id: /) as string });
    for (const id of ['x'.repeat(65), -1, 1.5, Number.MAX_SAFE_INTEGER + 1]) {
      c.sendJson({ type: 'ping', id });
      const reply = await c.nextJson();
      expect(reply).toMatchObject({ type: 'error', code: 'bad_request' });
      expect(reply).not.toHaveProperty('id');
    }
  });

  it('echoes a valid id in the error of an otherwise invalid frame', async () => {
    await setup();
    const c = await v1('alice');
    for (const id of ['x'.repeat(64), 0, Number.MAX_SAFE_INTEGER]) {
      c.sendJson({ type: 'send', id, to: 'bob' });
      expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', id });
    }
  });
});

describe('__proto__ in client data', () => {
  const data = '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"n":1}';

  it('is delivered verbatim from a uidpush.v1 frame', async () => {
    await setup();
    const bob = await seed('bob');
    const alice = await v1('alice');
    alice.send(`{"type":"send","id":1,"to":"bob","data":${data}}`);
    expect(await bob.next()).toBe(data);
    expect(await alice.nextJson()).toMatchObject({ type: 'ack', id: 1 });
    // As a field of the frame itself it is an unknown field, like any other.
    alice.send('{"type":"ping","id":2,"__proto__":{}}');
    expect(await alice.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', id: 2 });
  });

  it('is delivered verbatim from an API body, and refused as a field of the body', async () => {
    await setup();
    const bob = await seed('bob');
    expect(await post('/v1/push', `{"uid":"bob","data":${data}}`)).toEqual({ status: 200, body: { online: 1, connections: 1 } });
    expect(await bob.next()).toBe(data);
    expect(await post('/v1/broadcast', `{"data":${data}}`)).toEqual({ status: 200, body: { connections: 1 } });
    expect(await bob.next()).toBe(data);
    expect(await post('/v1/broadcast', '{"data":1,"__proto__":{"x":1}}')).toMatchObject({
      status: 400,
      body: { error: { code: 'bad_request' } },
    });
  });

  it('is delivered verbatim from an inner-port line', async () => {
    await setup({ innerPort: 0 });
    const bob = await v1('bob');
    const port = await inner();
    const line = `{"uid":"bob","data":${data}}`;
    port.send(`${line}\n`);
    expect(await port.answer()).toBe('ok');
    expect(await bob.nextJson()).toMatchObject({ type: 'message', from: null, data: line });
    // A uid hidden under __proto__ is no uid: JSON.parse makes it an own property.
    port.send('{"__proto__":{"uid":"bob"}}\n');
    expect(await port.answer()).toBe('error bad_request');
  });
});

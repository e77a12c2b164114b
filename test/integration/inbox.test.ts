import { afterEach, describe, expect, it } from 'vitest';
import { PushClient } from '../../src/api-client/index.js';
import { receivedUntil, testBed, type TestClient } from '../helpers/clients.js';

// The inbox in one process, what the contract (test/contract/inbox-contract.ts) does not
// cover: bad input of every kind, the seed protocol beside it, the inbox off.

type Json = Record<string, unknown>;

const bed = testBed();
afterEach(() => bed.cleanup());

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const port = bed.started().server.address().api?.port ?? 0;
  const res = await fetch(`http://127.0.0.1:${String(port)}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function auth(uid: string, fields: Json = {}): Promise<{ client: TestClient; reply: Json }> {
  const client = await bed.v1(bed.started().url);
  client.sendJson({ type: 'auth', id: 'a', uid, ...fields });
  return { client, reply: await client.nextJson() };
}

describe('the inbox on one node', () => {
  it('keeps the seed protocol byte for byte: live pushes, no offsets, no replay', async () => {
    const { url } = await bed.setup({ inbox: true });
    const seed = await bed.client(url, 'sam');
    expect((await api('POST', '/v1/push', { uid: 'sam', data: 'hello' })).body).toMatchObject({ online: 1, connections: 1, offset: 1 });
    expect(await seed.next()).toBe('hello');
    seed.send('sam:to myself');
    expect(await seed.next()).toBe('to myself');
    expect((await api('GET', '/v1/users/sam/inbox')).body).toMatchObject({ top: 2, retained: { from: 1, to: 2, count: 2 } });
  });

  it('retains a v1 send by default and answers its offset; an ephemeral one is delivered without one and not retained', async () => {
    const { url } = await bed.setup({ inbox: true });
    const bob = await bed.v1(url, 'bob');
    const alice = await bed.v1(url, 'alice');
    alice.sendJson({ type: 'send', id: 1, to: 'bob', data: { hi: 1 } });
    expect(await alice.nextJson()).toMatchObject({ type: 'ack', id: 1, result: { online: true, connections: 1, offset: 1 } });
    expect(await bob.nextJson()).toMatchObject({ type: 'message', from: 'alice', offset: 1, data: { hi: 1 } });
    alice.sendJson({ type: 'send', id: 2, to: 'bob', data: 'now or never', delivery: 'ephemeral' });
    expect((await alice.nextJson()).result).toEqual({ online: true, connections: 1 });
    const ephemeral = await bob.nextJson();
    expect(ephemeral).toMatchObject({ data: 'now or never' });
    expect(ephemeral.offset).toBeUndefined();
    expect((await api('GET', '/v1/users/bob/inbox')).body).toMatchObject({ top: 1 });
  });

  it('refuses a malformed since, a bad device and a since beyond the top, storing nothing', async () => {
    await bed.setup({ inbox: true });
    const negative = await auth('eve', { since: { epoch: 'abc', offset: -1 } });
    expect(negative.reply).toMatchObject({
      type: 'error',
      code: 'bad_request',
      id: 'a',
      message: 'auth: since.offset must be an integer >= 0',
    });
    const wrongType = await auth('eve', { since: { epoch: 7, offset: 1 } });
    expect(wrongType.reply).toMatchObject({ type: 'error', code: 'bad_request', id: 'a' });
    const badDevice = await auth('eve', { device: 'has spaces' });
    expect(badDevice.reply).toMatchObject({ code: 'bad_request', message: 'auth: device may hold only letters, digits and - _ . :' });
    const long = await auth('eve', { device: 'x'.repeat(65) });
    expect(long.reply).toMatchObject({ code: 'bad_request', message: 'auth: device is over 64 bytes' });

    const { reply: welcome } = await auth('eve', { device: 'ok' });
    const epoch = (welcome.inbox as Json).epoch;
    const beyond = await auth('eve', { device: 'ok', since: { epoch, offset: 5 } });
    expect(beyond.reply).toMatchObject({
      type: 'error',
      code: 'bad_request',
      id: 'a',
      message: 'auth: since.offset 5 is beyond the inbox top 0',
    });
    expect(await beyond.client.closed()).toBe(1008);
    expect((await api('GET', '/v1/users/eve/inbox')).body).toMatchObject({ top: 0, retained: { count: 0 } });
    // Bystanders: a device of the same uid is still served.
    await api('POST', '/v1/push', { uid: 'eve', data: 'still here' });
    const { client: fine } = await auth('eve', { device: 'ok', since: { epoch, offset: 0 } });
    expect(await fine.nextJson()).toMatchObject({ offset: 1, data: 'still here' });
  });

  it('refuses acks that go backwards or beyond the top, and moves the cursor on a good one', async () => {
    await bed.setup({ inbox: true });
    const { client } = await auth('ann', { device: 'phone' });
    for (let i = 0; i < 3; i++) await api('POST', '/v1/push', { uid: 'ann', data: i });
    for (let i = 0; i < 3; i++) await client.nextJson();
    client.sendJson({ type: 'ack', id: 1, upTo: 4 });
    expect(await client.nextJson()).toMatchObject({
      type: 'error',
      id: 1,
      code: 'bad_request',
      message: 'ack: upTo 4 is beyond the inbox top 3',
    });
    client.sendJson({ type: 'ack', id: 2, upTo: 2 });
    expect(await client.nextJson()).toMatchObject({ type: 'ack', id: 2, result: { upTo: 2 } });
    client.sendJson({ type: 'ack', id: 3, upTo: 1 });
    expect(await client.nextJson()).toMatchObject({ type: 'error', id: 3, message: "ack: upTo 1 is below the device's cursor 2" });
    client.sendJson({ type: 'ack', id: 4, upTo: -1 });
    expect(await client.nextJson()).toMatchObject({ type: 'error', id: 4, code: 'bad_request' });
    expect((await api('GET', '/v1/users/ann/inbox')).body.devices).toMatchObject([{ device: 'phone', cursor: 2 }]);
    // A device that reconnects with no position starts after its cursor.
    const { client: back, reply } = await auth('ann', { device: 'phone' });
    expect(reply).toMatchObject({ recovered: true, missed: 1, cursor: 2 });
    expect(await back.nextJson()).toMatchObject({ offset: 3, data: 2 });
  });

  it('refuses bad delivery classes, idempotency keys and awaits on the API and in v1 send', async () => {
    const { url } = await bed.setup({ inbox: true });
    expect(await api('POST', '/v1/push', { uid: 'x', data: 1, delivery: 'forever' })).toMatchObject({
      status: 400,
      body: { error: { code: 'bad_request' } },
    });
    expect(await api('POST', '/v1/push', { uid: 'x', data: 1, delivery: 'latest:' })).toMatchObject({ status: 400 });
    expect(await api('POST', '/v1/push', { uid: 'x', data: 1, idempotencyKey: 'k'.repeat(129) })).toMatchObject({ status: 400 });
    expect(await api('POST', '/v1/push', { uid: 'x', data: 1, await: { acked: 1, timeoutMs: 30_001 } })).toMatchObject({ status: 400 });
    expect(await api('POST', '/v1/push', { uids: ['x', 'y'], data: 1, await: { acked: 1, timeoutMs: 100 } })).toMatchObject({
      status: 400,
    });
    expect((await api('GET', '/v1/users/x/inbox')).body).toMatchObject({ epoch: null, top: 0 });
    const v1 = await bed.v1(url, 'sender');
    v1.sendJson({ type: 'send', id: 1, to: 'x', data: 1, delivery: 'sometimes' });
    expect(await v1.nextJson()).toMatchObject({ type: 'error', id: 1, code: 'bad_request' });
  });

  it('answers each uid of a push to several with its own position', async () => {
    await bed.setup({ inbox: true });
    await api('POST', '/v1/push', { uid: 'p', data: 0 });
    const { body } = await api('POST', '/v1/push', { uids: ['p', 'q', 'p'], data: 1 });
    expect(body.positions).toMatchObject([
      { uid: 'p', offset: 2 },
      { uid: 'q', offset: 1 },
    ]);
  });
});

describe('PushClient against a server with the inbox', () => {
  it('pushes with a class, a key and an await, and reads the inbox', async () => {
    const { server } = await bed.setup({ inbox: true });
    const client = new PushClient({ url: `http://127.0.0.1:${String(server.address().api?.port ?? 0)}` });
    const { client: phone } = await auth('kim', { device: 'phone' });
    phone.ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as Json;
      if (frame.type === 'message' && typeof frame.offset === 'number')
        phone.sendJson({ type: 'ack', id: `a${String(frame.offset)}`, upTo: frame.offset });
    });
    const awaited = await client.push('kim', 'ping', { idempotencyKey: 'k1', await: { acked: 1, timeoutMs: 5000 } });
    expect(awaited).toMatchObject({ online: 1, connections: 1, offset: 1, acked: ['phone'], undelivered: false });
    expect(await client.push('kim', 'ping', { idempotencyKey: 'k1' })).toMatchObject({ offset: 1, duplicate: true });
    expect(await client.push('kim', 'score 9', { delivery: 'latest:score' })).toMatchObject({ offset: 2 });
    // The device's ack of 2, answered: its cursor is moved.
    await receivedUntil(phone, () => phone.received.some((text) => text.includes('"id":"a2"')));
    const info = await client.inbox('kim');
    expect(info).toMatchObject({ uid: 'kim', top: 2, retained: { from: 1, to: 2, count: 2 } });
    expect(info.devices).toMatchObject([{ device: 'phone', cursor: 2 }]);
  });
});

describe('the inbox off (the default)', () => {
  it('delivers at most once and refuses what needs an inbox with a clear error', async () => {
    const { url } = await bed.setup();
    const bob = await bed.v1(url, 'bob');
    expect(bob.welcome?.inbox).toBeUndefined();
    expect((await api('POST', '/v1/push', { uid: 'bob', data: 'hi' })).body).toEqual({ online: 1, connections: 1 });
    expect(await bob.nextJson()).toEqual({ type: 'message', scope: 'uid', from: null, to: 'bob', data: 'hi' });
    const refused = await api('POST', '/v1/push', { uid: 'bob', data: 'hi', delivery: 'durable' });
    expect(refused).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });
    expect(await api('GET', '/v1/users/bob/inbox')).toMatchObject({ status: 400 });
    bob.sendJson({ type: 'ack', id: 1, upTo: 1 });
    expect(await bob.nextJson()).toMatchObject({ type: 'error', id: 1, code: 'bad_request' });
    bob.sendJson({ type: 'send', id: 2, to: 'bob', data: 1, delivery: 'durable' });
    expect(await bob.nextJson()).toMatchObject({ type: 'error', id: 2, code: 'bad_request' });
  });
});

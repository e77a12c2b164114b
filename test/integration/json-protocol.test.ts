import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ServerOptions } from '../../src/index.js';
import { connect, connectV1, offlineOf, startServer, type Started, type TestClient } from '../helpers/clients.js';

let started: Started;
const clients: TestClient[] = [];

async function setup(options: ServerOptions = {}): Promise<void> {
  await started.stop();
  started = await startServer(options);
}
/** A uidpush.v1 client, authenticated as `uid` (auth off: the uid itself). */
async function v1(uid?: string): Promise<TestClient> {
  const c = await connectV1(started.url);
  clients.push(c);
  if (uid !== undefined) {
    c.sendJson({ type: 'auth', uid });
    expect(await c.nextJson()).toMatchObject({ type: 'welcome', uid });
  }
  return c;
}
async function seed(uid: string): Promise<TestClient> {
  const c = await connect(started.url);
  clients.push(c);
  return c.login(uid);
}

beforeEach(async () => {
  started = await startServer();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started.stop();
});

/** The HTTP answer to a handshake offering `protocols`: 101 and the subprotocol, or the refusal. */
async function handshake(protocols: string[]): Promise<{ status: number; protocol?: string; retryAfter?: string; body?: string }> {
  const ws = new WebSocket(started.url, protocols);
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res) => {
      const protocol = res.headers['sec-websocket-protocol'];
      ws.once('open', () => {
        ws.close();
        resolve({ status: res.statusCode ?? 0, ...(protocol === undefined ? {} : { protocol }) });
      });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.once('end', () => {
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, body, ...(retryAfter === undefined ? {} : { retryAfter }) });
      });
    });
    ws.once('error', reject);
  });
}

describe('subprotocol negotiation', () => {
  it('speaks uidpush.v1 to a client that offers it, and the seed protocol otherwise', async () => {
    const json = await v1();
    expect(json.ws.protocol).toBe('uidpush.v1');
    const text = await connect(started.url);
    clients.push(text);
    expect(text.ws.protocol).toBe('');
  });

  it('answers 101 with uidpush.v1 to a client offering it among others, and 101 without a subprotocol to one offering none', async () => {
    expect(await handshake(['foo', 'uidpush.v1'])).toEqual({ status: 101, protocol: 'uidpush.v1' });
    expect(await handshake([])).toEqual({ status: 101 });
  });

  it('refuses with 400, naming what it speaks, a handshake offering only subprotocols it does not speak', async () => {
    for (const offered of [['foo'], ['foo', 'uidpush.v2'], ['UIDPUSH.V1']]) {
      expect(await handshake(offered)).toEqual({
        status: 400,
        body: 'uidpush: no supported subprotocol offered; offer uidpush.v1 (JSON frames), or none (the seed text protocol)\n',
      });
    }
    // Refused before anything was made: no connection is open, and the next client is served.
    expect(started.server.openConnections).toBe(0);
    const alice = await seed('alice');
    alice.send('alice:still served');
    expect(await alice.next()).toBe('still served');
  });
});

describe('uidpush.v1 frames', () => {
  it('auth -> welcome with uid, connection id and the request id', async () => {
    const c = await v1();
    c.sendJson({ type: 'auth', uid: 'alice', id: 'a1' });
    const welcome = await c.nextJson();
    expect(welcome).toEqual({ type: 'welcome', uid: 'alice', connectionId: expect.any(Number) as number, id: 'a1' });
  });

  it('send -> message to every connection of the uid, ack with the result', async () => {
    const alice = await v1('alice');
    const bob1 = await v1('bob');
    const bob2 = await v1('bob');
    alice.sendJson({ type: 'send', id: 1, to: 'bob', data: { text: 'hi', n: [1, 2] } });
    const expected = { type: 'message', scope: 'uid', from: 'alice', to: 'bob', data: { text: 'hi', n: [1, 2] } };
    expect(await bob1.nextJson()).toEqual(expected);
    expect(await bob2.nextJson()).toEqual(expected);
    expect(await alice.nextJson()).toEqual({ type: 'ack', id: 1, result: { online: true, connections: 2 } });
    alice.sendJson({ type: 'send', id: 2, to: 'nobody', data: 'x' });
    expect(await alice.nextJson()).toEqual({ type: 'ack', id: 2, result: { online: false, connections: 0 } });
  });

  it('sends no ack for a request without an id', async () => {
    const alice = await v1('alice');
    const bob = await v1('bob');
    alice.sendJson({ type: 'send', to: 'bob', data: 1 });
    expect(await bob.nextJson()).toMatchObject({ data: 1 });
    await alice.nothingFor(100);
  });

  it('broadcast -> message with scope broadcast to every logged-in connection', async () => {
    const alice = await v1('alice');
    const bob = await v1('bob');
    const anonymous = await v1();
    alice.sendJson({ type: 'broadcast', id: 'b', data: 'all' });
    const expected = { type: 'message', scope: 'broadcast', from: 'alice', to: null, data: 'all' };
    expect(await bob.nextJson()).toEqual(expected);
    const [first, second] = [await alice.nextJson(), await alice.nextJson()];
    expect([first, second]).toContainEqual(expected);
    expect([first, second]).toContainEqual({ type: 'ack', id: 'b', result: { connections: 2 } });
    await anonymous.nothingFor(100);
  });

  it('join, publish, leave: group messages reach members only', async () => {
    const alice = await v1('alice');
    const bob = await v1('bob');
    const carol = await v1('carol');
    bob.sendJson({ type: 'join', id: 'j', group: 'room' });
    expect(await bob.nextJson()).toEqual({ type: 'ack', id: 'j', result: { group: 'room', joined: true } });
    bob.sendJson({ type: 'join', id: 'j2', group: 'room' });
    expect(await bob.nextJson()).toEqual({ type: 'ack', id: 'j2', result: { group: 'room', joined: false } });
    alice.sendJson({ type: 'publish', id: 'p', group: 'room', data: { hello: 'room' } });
    expect(await bob.nextJson()).toEqual({ type: 'message', scope: 'group', from: 'alice', to: 'room', data: { hello: 'room' } });
    expect(await alice.nextJson()).toEqual({ type: 'ack', id: 'p', result: { online: 1, connections: 1 } });
    await carol.nothingFor(50);
    bob.sendJson({ type: 'leave', id: 'l', group: 'room' });
    expect(await bob.nextJson()).toEqual({ type: 'ack', id: 'l', result: { group: 'room', left: true } });
    alice.sendJson({ type: 'publish', id: 'p2', group: 'room', data: 'again' });
    expect(await alice.nextJson()).toEqual({ type: 'ack', id: 'p2', result: { online: 0, connections: 0 } });
    await bob.nothingFor(50);
  });

  it('ping -> pong, before and after auth', async () => {
    const c = await v1();
    c.sendJson({ type: 'ping', id: 7 });
    expect(await c.nextJson()).toEqual({ type: 'pong', id: 7 });
    c.sendJson({ type: 'auth', uid: 'p' });
    await c.nextJson();
    c.sendJson({ type: 'ping' });
    expect(await c.nextJson()).toEqual({ type: 'pong' });
  });

  it('encodes a group publish once per codec for all members', async () => {
    const members = await Promise.all(['a', 'b', 'c'].map((u) => v1(u)));
    const seeds = await Promise.all(['d', 'e'].map((u) => seed(u)));
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((uid) => started.server.join('g', uid)));
    const before = started.server.local.delivery.framesEncoded;
    expect(await started.server.publish('g', { x: 1 })).toEqual({ online: 5, connections: 5 });
    expect(started.server.local.delivery.framesEncoded - before).toBe(2);
    for (const m of members) expect(await m.nextJson()).toMatchObject({ scope: 'group', to: 'g', data: { x: 1 } });
    for (const s of seeds) expect(await s.next()).toBe('{"x":1}');
  });
});

describe('uidpush.v1 errors', () => {
  it('answers invalid frames with bad_request, echoing the id, and stays open', async () => {
    const c = await v1('alice');
    const bad: [unknown, RegExp][] = [
      ['{not json', /not valid JSON/],
      [{ type: 'teleport', id: 1 }, /type/],
      [{ type: 'send', id: 2, data: 1 }, /to/],
      [{ type: 'send', id: 3, to: 'bob' }, /data/],
      [{ type: 'send', id: 4, to: 5, data: 1 }, /to/],
      [{ type: 'send', id: 5, to: 'bob', data: 1, extra: true }, /extra|Unrecognized/],
      [{ type: 'join', id: 6, group: '' }, /group/],
      [[1, 2], /frame|type/],
      [{ type: 'send', id: 8, to: 'x'.repeat(129), data: 1 }, /to: uid longer than 128/],
    ];
    for (const [frame, message] of bad) {
      c.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
      const error = await c.nextJson();
      expect(error).toMatchObject({ type: 'error', code: 'bad_request' });
      expect(error.message).toMatch(message);
      const id = typeof frame === 'object' && frame !== null && 'id' in frame ? frame.id : undefined;
      expect(error.id).toBe(id);
    }
    c.sendJson({ type: 'ping', id: 'still' });
    expect(await c.nextJson()).toEqual({ type: 'pong', id: 'still' });
  });

  it('refuses requests before auth with unauthorized', async () => {
    const c = await v1();
    c.sendJson({ type: 'send', id: 1, to: 'x', data: 1 });
    expect(await c.nextJson()).toEqual({ type: 'error', code: 'unauthorized', message: 'authenticate first (send an auth frame)', id: 1 });
  });

  it('refuses a second auth, an auth without uid, and a binary frame', async () => {
    const c = await v1();
    c.sendJson({ type: 'auth', id: 1 });
    expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', id: 1 });
    c.sendJson({ type: 'auth', uid: 'all', id: 2 });
    expect(await c.nextJson()).toMatchObject({
      type: 'error',
      code: 'bad_request',
      message: expect.stringMatching(/reserved/) as string,
      id: 2,
    });
    c.sendJson({ type: 'auth', uid: 'me' });
    await c.nextJson();
    c.sendJson({ type: 'auth', uid: 'me', id: 3 });
    expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', message: 'auth: already authenticated', id: 3 });
    c.send(Buffer.from('{}'), true);
    expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(/binary/) as string });
  });

  it('answers rate_limited as an error frame and closes a frame over maxMessageSize with 1009', async () => {
    await setup({ maxMessageSize: 300, rateLimit: 5, rateBurst: 3 });
    const c = await v1('alice');
    for (let i = 0; i < 5; i++) c.sendJson({ type: 'ping', id: i });
    // The auth frame took one of the 3 tokens: two pongs, then the notice.
    const got = [await c.nextJson(), await c.nextJson(), await c.nextJson()];
    expect(got).toContainEqual(expect.objectContaining({ type: 'error', code: 'rate_limited' }));
    c.sendJson({ type: 'send', to: 'bob', data: 'x'.repeat(400) });
    expect(await c.closed()).toBe(1009);
  });
});

describe('both protocols on one server', () => {
  it('lets a seed client and a uidpush.v1 client exchange messages', async () => {
    const textual = await seed('sam');
    const json = await v1('jo');
    textual.send('jo:hello from seed: with a colon');
    expect(await json.nextJson()).toEqual({ type: 'message', scope: 'uid', from: 'sam', to: 'jo', data: 'hello from seed: with a colon' });
    json.sendJson({ type: 'send', to: 'sam', data: 'plain text' });
    expect(await textual.next()).toBe('plain text');
    json.sendJson({ type: 'send', to: 'sam', data: { structured: true } });
    expect(await textual.next()).toBe('{"structured":true}');
    textual.send('all:everyone');
    expect(await json.nextJson()).toMatchObject({ scope: 'broadcast', from: 'sam', data: 'everyone' });
    expect(await textual.next()).toBe('everyone');
  });

  it('delivers server pushes to each in its own form, encoded once per codec', async () => {
    const textual = await seed('u');
    const json = await v1('u');
    const before = started.server.local.delivery.framesEncoded;
    void started.server.push('u', { a: 1 });
    expect(started.server.local.delivery.framesEncoded - before).toBe(2);
    expect(await textual.next()).toBe('{"a":1}');
    expect(await json.nextJson()).toEqual({ type: 'message', scope: 'uid', from: null, to: 'u', data: { a: 1 } });
  });
});

describe('groups', () => {
  it('membership belongs to the uid and survives its reconnect', async () => {
    let bob = await v1('bob');
    bob.sendJson({ type: 'join', id: 1, group: 'fans' });
    await bob.nextJson();
    const gone = offlineOf(started.server, 'bob');
    bob.close();
    await gone;
    expect(await started.server.groupInfo('fans')).toEqual({ group: 'fans', members: 1, online: 0, connections: 0 });
    bob = await v1('bob');
    const laptop = await seed('bob');
    expect(await started.server.publish('fans', 'welcome back')).toEqual({ online: 1, connections: 2 });
    expect(await bob.nextJson()).toMatchObject({ scope: 'group', to: 'fans', data: 'welcome back' });
    expect(await laptop.next()).toBe('welcome back');
  });
});

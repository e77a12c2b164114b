import { describe, expect, it } from 'vitest';
import { TokenError, type Identity, type TokenVerifier } from '../../src/auth/jwt.js';
import type { Grants } from '../../src/auth/rights.js';
import type { SessionNode } from '../../src/core/service.js';
import { silentLogger } from '../../src/core/types.js';
import { Codec } from '../../src/protocol/codec.js';
import { parseClientFrame } from '../../src/protocol/json-v1.js';
import type { SessionConnection, SessionOptions } from '../../src/session/connection.js';
import { RateLimit } from '../../src/session/limits.js';
import { Session } from '../../src/session/session.js';

class FakeConn implements SessionConnection {
  readonly id = 7;
  uid: string | undefined = undefined;
  grants: Grants | undefined = undefined;
  held: Buffer[] | undefined = undefined;
  credit = 0;
  creditAt = 0;
  quietUntil = 0;
  isOpen = true;
  paused = false;
  sent: string[] = [];
  closedWith: number | undefined;
  readonly codec: Codec;
  constructor(codec: Codec) {
    this.codec = codec;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  sendText(text: string): void {
    this.sent.push(text);
  }
  close(code: number): void {
    this.closedWith = code;
    this.isOpen = false;
  }
  terminate(): void {
    this.isOpen = false;
  }
}

const show = (data: unknown): string => (typeof data === 'string' ? data : Buffer.isBuffer(data) ? data.toString() : JSON.stringify(data));

/** A node that records calls; `attach` calls back at once unless `later` is set. */
function fakeNode(later = false) {
  const bound = new Map<FakeConn, string>();
  const pending: (() => void)[] = [];
  const calls: string[] = [];
  const node: SessionNode<FakeConn> = {
    attach(conn, uid, attached) {
      const done = (): void => {
        bound.set(conn, uid);
        attached(conn);
      };
      if (later) pending.push(done);
      else done();
    },
    detach: (conn) => bound.delete(conn),
    uidOf: (conn) => bound.get(conn),
    // The inbox is off: this fake is about sessions, docs/delivery.md's cases run on real servers.
    inboxOn: false,
    ack: () => undefined,
    sendToUid(uid, data) {
      calls.push(`send ${uid} ${show(data)}`);
      return { online: 1, connections: 2 };
    },
    broadcast(data) {
      calls.push(`broadcast ${show(data)}`);
      return { connections: 3 };
    },
    publish(group) {
      calls.push(`publish ${group}`);
      return { online: 1, connections: 1 };
    },
    join: (group) => group !== 'old',
    leave: () => true,
  };
  return { node, pending, calls };
}

const options: SessionOptions = {
  maxMessageSize: 65536,
  maxUidLength: 64,
  maxJsonDepth: 8,
  rateLimit: 0,
  rateBurst: 10,
  clientRights: ['send', 'broadcast', 'publish', 'join'],
};

function session(node: SessionNode<FakeConn>, o: Partial<SessionOptions> = {}) {
  const logins: string[] = [];
  const s = new Session<FakeConn>(
    node,
    { ...options, ...o },
    { loggedIn: () => undefined, expireAt: () => undefined },
    { login: (_c, uid) => logins.push(uid), message: () => undefined, refused: () => undefined, internalError: () => undefined },
    silentLogger,
  );
  return { s, logins };
}

const text = (t: string): Buffer => Buffer.from(t);
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

describe('Session login', () => {
  it('logs a seed client in by uid and answers with the seed reply', () => {
    const { s, logins } = session(fakeNode().node);
    const conn = new FakeConn(Codec.Seed);
    s.receive(conn, text('alice'), false, 0);
    expect(conn.sent).toEqual(['login success, your uid is alice']);
    expect(logins).toEqual(['alice']);
  });

  it('refuses a uid the name rules refuse', () => {
    const { s } = session(fakeNode().node);
    const conn = new FakeConn(Codec.Seed);
    s.receive(conn, text('all'), false, 0);
    expect(conn.sent[0]).toMatch(/^error: bad_request uid 'all' is reserved/);
    expect(conn.uid).toBeUndefined();
  });

  it('holds messages until a later attach, then welcomes and replays them in order', () => {
    const { node, pending, calls } = fakeNode(true);
    const { s } = session(node);
    const conn = new FakeConn(Codec.JsonV1);
    s.receive(conn, json({ type: 'auth', uid: 'bob', id: 1 }), false, 0);
    s.receive(conn, json({ type: 'send', to: 'x', data: 'one' }), false, 0);
    s.receive(conn, json({ type: 'send', to: 'x', data: 'two' }), false, 0);
    expect(conn.sent).toEqual([]);
    expect(conn.paused).toBe(true);
    pending.shift()?.();
    expect(conn.sent[0]).toBe('{"type":"welcome","uid":"bob","connectionId":7,"id":1}');
    expect(calls).toEqual(['send x one', 'send x two']);
    expect(conn.paused).toBe(false);
  });

  it('sends nothing when the connection closes before the attach', () => {
    const { node } = fakeNode(true);
    const { s, logins } = session(node);
    const conn = new FakeConn(Codec.JsonV1);
    s.receive(conn, json({ type: 'auth', uid: 'bob' }), false, 0);
    conn.isOpen = false;
    s.closed(conn);
    expect(conn.held).toBeUndefined();
    expect(logins).toEqual([]);
    expect(conn.sent).toEqual([]);
  });

  it('verifies a token, holding messages meanwhile, and refreshes it later', async () => {
    const { node, calls } = fakeNode();
    const { s } = session(node);
    let resolve: (i: Identity) => void = () => undefined;
    const verifier = {
      verify: (token: string) =>
        token === 'bad' ? Promise.reject(new TokenError('bad signature')) : new Promise<Identity>((r) => (resolve = r)),
    } as unknown as TokenVerifier;
    s.setVerifier(verifier);
    const conn = new FakeConn(Codec.JsonV1);
    s.receive(conn, json({ type: 'auth', token: 't', id: 'a' }), false, 0);
    s.receive(conn, json({ type: 'broadcast', data: 'hi', id: 2 }), false, 0);
    expect(conn.sent).toEqual([]);
    resolve({ uid: 'carol' } as Identity);
    await Promise.resolve();
    await Promise.resolve();
    expect(conn.sent).toEqual([
      '{"type":"welcome","uid":"carol","connectionId":7,"id":"a"}',
      '{"type":"ack","id":2,"result":{"connections":3}}',
    ]);
    expect(calls).toEqual(['broadcast hi']);
    s.receive(conn, json({ type: 'auth', token: 't2', id: 3 }), false, 0);
    resolve({ uid: 'carol', expiresAt: 5000 } as Identity);
    await new Promise((r) => setImmediate(r));
    expect(conn.sent.at(-1)).toBe('{"type":"ack","id":3,"result":{"refreshed":true,"expiresAt":5000}}');
  });

  it('refuses a bad token with unauthorized and a 4502 close', async () => {
    const { s } = session(fakeNode().node);
    s.setVerifier({ verify: () => Promise.reject(new TokenError('bad signature')) } as unknown as TokenVerifier);
    const conn = new FakeConn(Codec.Seed);
    s.receive(conn, text('token'), false, 0);
    await new Promise((r) => setImmediate(r));
    expect(conn.sent).toEqual(['error: unauthorized bad signature']);
    expect(conn.closedWith).toBe(4502);
  });
});

describe('Session commands', () => {
  it('seed: pushes, broadcasts, and answers errors and missing rights', () => {
    const { node, calls } = fakeNode();
    const { s } = session(node, { clientRights: ['send'] });
    const conn = new FakeConn(Codec.Seed);
    s.receive(conn, text('a'), false, 0);
    s.receive(conn, text('b:hello'), false, 0);
    s.receive(conn, text('all:hi'), false, 0);
    s.receive(conn, text('nocolon'), false, 0);
    expect(calls).toEqual(['send b hello']);
    expect(conn.sent.slice(1)).toEqual(['error: forbidden no right to broadcast', 'error: bad_request expected <uid>:<message>']);
  });

  it('v1: acks echo ids, errors name the field, unauthenticated requests are refused', () => {
    const { s } = session(fakeNode().node);
    const conn = new FakeConn(Codec.JsonV1);
    s.receive(conn, json({ type: 'send', to: 'x', data: 1, id: 'early' }), false, 0);
    s.receive(conn, json({ type: 'auth', uid: 'u' }), false, 0);
    s.receive(conn, json({ type: 'send', to: 'x', data: 1, id: 1 }), false, 0);
    s.receive(conn, json({ type: 'publish', group: 'g', data: 1, id: 2 }), false, 0);
    s.receive(conn, json({ type: 'join', group: 'g', id: 3 }), false, 0);
    s.receive(conn, json({ type: 'leave', group: 'g', id: 4 }), false, 0);
    s.receive(conn, json({ type: 'send', to: 'a:b', data: 1, id: 5 }), false, 0);
    s.receive(conn, json({ type: 'ping', id: 6 }), false, 0);
    s.receive(conn, json({ type: 'send', to: 'x', data: 1 }), false, 0);
    expect(conn.sent).toEqual([
      '{"type":"error","code":"unauthorized","message":"authenticate first (send an auth frame)","id":"early"}',
      '{"type":"welcome","uid":"u","connectionId":7}',
      '{"type":"ack","id":1,"result":{"online":true,"connections":2}}',
      '{"type":"ack","id":2,"result":{"online":1,"connections":1}}',
      '{"type":"ack","id":3,"result":{"group":"g","joined":true}}',
      '{"type":"ack","id":4,"result":{"group":"g","left":true}}',
      '{"type":"error","code":"bad_request","message":"to: uid must not contain \':\'","id":5}',
      '{"type":"pong","id":6}',
    ]);
  });

  it('refuses binary frames', () => {
    const { s } = session(fakeNode().node);
    const conn = new FakeConn(Codec.Seed);
    s.receive(conn, text('x'), true, 0);
    expect(conn.sent).toEqual(['error: bad_request binary frames are not supported; send text']);
  });
});

describe('RateLimit', () => {
  it('spends a burst of credit, then refills at the rate', () => {
    const rate = new RateLimit(10, 2);
    const conn = { credit: 0, creditAt: 0, quietUntil: 0 };
    rate.start(conn, 0);
    expect([rate.take(conn, 0), rate.take(conn, 0), rate.take(conn, 0)]).toEqual([true, true, false]);
    expect(rate.take(conn, 100)).toBe(true);
    expect(rate.take(conn, 100)).toBe(false);
    expect([rate.notice(conn, 100), rate.notice(conn, 500), rate.notice(conn, 1100)]).toEqual([true, false, true]);
  });

  it('is off at a rate of 0', () => {
    const rate = new RateLimit(0, 0);
    const conn = { credit: 0, creditAt: 0, quietUntil: 0 };
    expect(rate.take(conn, 0)).toBe(true);
  });
});

describe('parseClientFrame', () => {
  it('parses a valid frame', () => {
    expect(parseClientFrame(json({ type: 'join', group: 'g', id: 1 }), 8)).toEqual({
      kind: 'frame',
      frame: { type: 'join', group: 'g', id: 1 },
    });
  });

  it.each([
    ['not JSON', Buffer.from('{'), 'frame is not valid JSON', undefined],
    ['too deep', json({ type: 'send', to: 'x', data: [[[[[[[[[[1]]]]]]]]]] }), 'data nested deeper than 8 levels', undefined],
    ['unknown type', json({ type: 'nope', id: 4 }), undefined, 4],
    ['extra field', json({ type: 'ping', id: 'p', x: 1 }), undefined, 'p'],
    ['an id too long to echo', json({ type: 'ping', id: 'x'.repeat(65) }), undefined, undefined],
  ])('refuses %s', (_name, raw, message, id) => {
    const parsed = parseClientFrame(raw, 8);
    expect(parsed.kind).toBe('error');
    if (parsed.kind !== 'error') return;
    expect(parsed.code).toBe('bad_request');
    if (message !== undefined) expect(parsed.message).toBe(message);
    expect(parsed.id).toBe(id);
  });
});

import { describe, expect, it } from 'vitest';
import { CloseCode } from '../../src/core/close-codes.js';
import { UidpushError } from '../../src/core/errors.js';
import { Hub, type ConnectionInbox, type HubOptions, type Recipient } from '../../src/delivery/hub.js';
import { Codec } from '../../src/protocol/codec.js';
import { Registry } from '../../src/registry/registry.js';

/** A connection that records what the hub wrote to it and how it was closed. */
class FakeRecipient implements Recipient {
  readonly frames: Buffer[] = [];
  closed: { code: number; reason: string } | undefined;
  bufferedBytes = 0;
  attached = true;
  open = true;
  inbox: ConnectionInbox | undefined = undefined;

  readonly name: string;
  readonly codec: Codec;

  constructor(name: string, codec: Codec = Codec.Seed) {
    this.name = name;
    this.codec = codec;
  }

  writeFrame(frame: Buffer): boolean {
    if (!this.open) return false;
    this.frames.push(frame);
    return true;
  }

  close(code: number, reason: string): void {
    this.open = false;
    this.closed = { code, reason };
  }

  /** The text payloads received, frame headers stripped. */
  get texts(): string[] {
    return this.frames.map(payloadOf);
  }
}

function payloadOf(frame: Buffer): string {
  const len = frame[1] ?? 0;
  const header = len < 126 ? 2 : len === 126 ? 4 : 10;
  return frame.subarray(header).toString('utf8');
}

function setup(options: Partial<HubOptions<FakeRecipient>> = {}): {
  hub: Hub<FakeRecipient>;
  registry: Registry<FakeRecipient>;
  connect: (uid: string, codec?: Codec) => FakeRecipient;
} {
  const registry = new Registry<FakeRecipient>();
  const hub = new Hub(registry, { maxBufferedBytes: 1024, slowConsumerPolicy: 'close', ...options });
  let n = 0;
  const connect = (uid: string, codec: Codec = Codec.Seed): FakeRecipient => {
    const conn = new FakeRecipient(`${uid}#${String(n++)}`, codec);
    registry.bind(conn, uid);
    return conn;
  };
  return { hub, registry, connect };
}

describe('Hub: pushes to uids', () => {
  it('writes a push to the one connection of a uid and to no one else', () => {
    const { hub, connect } = setup();
    const alice = connect('alice');
    const bob = connect('bob');
    expect(hub.sendToUid('alice', 'hello')).toBe(1);
    expect(alice.texts).toEqual(['hello']);
    expect(bob.frames).toEqual([]);
  });

  it('writes a push to every connection of a uid, with the same bytes', () => {
    const { hub, connect } = setup();
    const phone = connect('alice');
    const laptop = connect('alice');
    const tablet = connect('alice');
    expect(hub.sendToUid('alice', 'hello')).toBe(3);
    expect(phone.frames[0]).toBe(laptop.frames[0]);
    expect(laptop.frames[0]).toBe(tablet.frames[0]);
    expect(hub.stats.framesEncoded).toBe(1);
    expect(hub.stats.framesWritten).toBe(3);
  });

  it('drops a push to an offline uid and counts it', () => {
    const { hub } = setup();
    expect(hub.sendToUid('nobody', 'hello')).toBe(0);
    expect(hub.stats.offlineDrops).toBe(1);
    expect(hub.stats.framesEncoded).toBe(0);
  });

  it('counts online uids and connections of a push to several uids, each uid once', () => {
    const { hub, connect } = setup();
    connect('a');
    connect('b');
    connect('b');
    const result = hub.sendToUids(['a', 'b', 'a', 'offline'], 'x');
    expect(result).toEqual({ online: 2, connections: 3 });
    expect(hub.stats.offlineDrops).toBe(1);
    // One seed frame for all of them.
    expect(hub.stats.framesEncoded).toBe(1);
  });

  it('encodes nothing for a push to uids that are all offline', () => {
    const { hub } = setup();
    expect(hub.sendToUids(['x', 'y'], 'x')).toEqual({ online: 0, connections: 0 });
    expect(hub.stats).toMatchObject({ framesEncoded: 0, offlineDrops: 2 });
  });

  it('names the recipient uid in each v1 frame of a push to several uids', () => {
    const { hub, connect } = setup();
    const a = connect('a', Codec.JsonV1);
    const b = connect('b', Codec.JsonV1);
    hub.sendToUids(['a', 'b'], { n: 1 }, 'sender');
    expect(JSON.parse(a.texts[0] ?? '')).toEqual({ type: 'message', scope: 'uid', from: 'sender', to: 'a', data: { n: 1 } });
    expect(JSON.parse(b.texts[0] ?? '')).toEqual({ type: 'message', scope: 'uid', from: 'sender', to: 'b', data: { n: 1 } });
  });

  it('sends seed clients the text as is and JSON data as its JSON text', () => {
    const { hub, connect } = setup();
    const seed = connect('s');
    hub.sendToUid('s', 'plain text');
    hub.sendToUid('s', { a: [1, 2] });
    hub.sendToUid('s', Buffer.from('bytes'));
    expect(seed.texts).toEqual(['plain text', '{"a":[1,2]}', 'bytes']);
  });

  it('gives each connection of a uid the frame of its own protocol', () => {
    const { hub, connect } = setup();
    const seed = connect('alice', Codec.Seed);
    const v1 = connect('alice', Codec.JsonV1);
    expect(hub.sendToUid('alice', 'hi')).toBe(2);
    expect(seed.texts).toEqual(['hi']);
    expect(JSON.parse(v1.texts[0] ?? '')).toEqual({ type: 'message', scope: 'uid', from: null, to: 'alice', data: 'hi' });
    expect(hub.stats.framesEncoded).toBe(2);
  });

  it('counts bytes written', () => {
    const { hub, connect } = setup();
    connect('a');
    connect('a');
    hub.sendToUid('a', 'abc');
    // 2-byte header + 3 bytes, twice.
    expect(hub.stats.bytesWritten).toBe(10);
  });

  it('does not count a write to a connection that is no longer open', () => {
    const { hub, connect } = setup();
    const open = connect('a');
    const gone = connect('a');
    gone.open = false;
    expect(hub.sendToUid('a', 'x')).toBe(1);
    expect(open.frames).toHaveLength(1);
    expect(hub.stats.framesWritten).toBe(1);
  });
});

describe('Hub: broadcast', () => {
  it('writes to every connection and encodes once per codec, whatever the number of recipients', () => {
    const { hub, connect } = setup();
    const conns = Array.from({ length: 50 }, (_, i) => connect(`u${String(i % 20)}`));
    const v1 = connect('v', Codec.JsonV1);
    expect(hub.broadcast('news')).toBe(51);
    expect(hub.stats.framesEncoded).toBe(2);
    for (const c of conns) expect(c.texts).toEqual(['news']);
    expect(JSON.parse(v1.texts[0] ?? '')).toEqual({ type: 'message', scope: 'broadcast', from: null, to: null, data: 'news' });
  });

  it('encodes nothing when no one is connected', () => {
    const { hub } = setup();
    expect(hub.broadcast('news')).toBe(0);
    expect(hub.stats.framesEncoded).toBe(0);
  });
});

describe('Hub: groups (the members online here, in the registry)', () => {
  it('publishes to the online members of a group only', () => {
    const { hub, registry, connect } = setup();
    const member = connect('m1');
    const member2a = connect('m2');
    const member2b = connect('m2');
    const outsider = connect('out');
    registry.join('room', 'm1');
    registry.join('room', 'm2');
    // Membership of an offline uid is the store's, not the registry's.
    expect(registry.join('room', 'offline-member')).toBe(false);
    expect(hub.publish('room', 'hi')).toEqual({ online: 2, connections: 3 });
    expect(member.texts).toEqual(['hi']);
    expect(member2a.texts).toEqual(['hi']);
    expect(member2b.texts).toEqual(['hi']);
    expect(outsider.frames).toEqual([]);
    expect(hub.stats.framesEncoded).toBe(1);
  });

  it('names the group in v1 frames', () => {
    const { hub, registry, connect } = setup();
    const v1 = connect('m', Codec.JsonV1);
    registry.join('room', 'm');
    hub.publish('room', 1, 'from');
    expect(JSON.parse(v1.texts[0] ?? '')).toEqual({ type: 'message', scope: 'group', from: 'from', to: 'room', data: 1 });
  });

  it('encodes nothing to publish to a group without members', () => {
    const { hub } = setup();
    expect(hub.publish('empty', 'x')).toEqual({ online: 0, connections: 0 });
    expect(hub.stats.framesEncoded).toBe(0);
  });

  it('stops publishing to a member once its last connection here goes', () => {
    const { hub, registry, connect } = setup();
    const conn = connect('gone');
    registry.join('room', 'gone');
    registry.unbind(conn);
    expect(hub.publish('room', 'x')).toEqual({ online: 0, connections: 0 });
    expect(conn.frames).toEqual([]);
  });
});

describe('Hub: the send-buffer cap', () => {
  it('closes a connection whose buffer the frame would overflow with 4001 and unbinds it (close)', () => {
    const slow: { conn: string; uid: string | undefined }[] = [];
    const { hub, registry, connect } = setup({
      maxBufferedBytes: 100,
      onSlowConsumer: (conn, uid) => slow.push({ conn: conn.name, uid }),
    });
    const fast = connect('alice');
    const stuck = connect('alice');
    stuck.bufferedBytes = 99;
    expect(hub.sendToUid('alice', 'xx')).toBe(1);
    expect(fast.texts).toEqual(['xx']);
    expect(stuck.frames).toEqual([]);
    expect(stuck.closed?.code).toBe(CloseCode.SlowConsumer);
    expect(registry.uidOf(stuck)).toBeUndefined();
    expect(hub.connectionsOf('alice')).toBe(1);
    expect(slow).toEqual([{ conn: stuck.name, uid: 'alice' }]);
    expect(hub.stats).toMatchObject({ framesDropped: 1, slowConsumersClosed: 1, framesWritten: 1 });
  });

  it('writes a frame that fills the buffer exactly to the cap', () => {
    const { hub, connect } = setup({ maxBufferedBytes: 100 });
    const conn = connect('a');
    conn.bufferedBytes = 96; // + 2-byte header + 2 bytes = 100
    expect(hub.sendToUid('a', 'xx')).toBe(1);
    expect(conn.closed).toBeUndefined();
  });

  it('skips the message for that connection only and keeps it open (drop)', () => {
    const slow: (string | undefined)[] = [];
    const { hub, registry, connect } = setup({
      maxBufferedBytes: 100,
      slowConsumerPolicy: 'drop',
      onSlowConsumer: (_conn, uid) => slow.push(uid),
    });
    const stuck = connect('alice');
    stuck.bufferedBytes = 100;
    expect(hub.sendToUid('alice', 'x')).toBe(0);
    expect(stuck.closed).toBeUndefined();
    expect(registry.uidOf(stuck)).toBe('alice');
    expect(slow).toEqual(['alice']);
    expect(hub.stats).toMatchObject({ framesDropped: 1, slowConsumersClosed: 0, framesWritten: 0 });
    stuck.bufferedBytes = 0;
    expect(hub.sendToUid('alice', 'y')).toBe(1);
    expect(stuck.texts).toEqual(['y']);
  });

  it('applies the cap to a broadcast and to a group push, closing only the slow ones', () => {
    const { hub, registry, connect } = setup({ maxBufferedBytes: 100 });
    const ok = connect('a');
    const stuck = connect('b');
    stuck.bufferedBytes = 1000;
    registry.join('g', 'a');
    registry.join('g', 'b');
    expect(hub.broadcast('x')).toBe(1);
    expect(stuck.closed?.code).toBe(CloseCode.SlowConsumer);
    expect(hub.publish('g', 'y')).toEqual({ online: 1, connections: 1 });
    expect(ok.texts).toEqual(['x', 'y']);
  });

  it('applies the cap to a direct write', () => {
    const { hub, connect } = setup({ maxBufferedBytes: 100, slowConsumerPolicy: 'drop' });
    const conn = connect('a');
    expect(hub.write(conn, Buffer.alloc(100))).toBe(true);
    conn.bufferedBytes = 1;
    expect(hub.write(conn, Buffer.alloc(100))).toBe(false);
    expect(hub.stats.framesDropped).toBe(1);
  });
});

describe('Hub: kick', () => {
  it('closes every connection of the uid with 4501 and the reason, unbinding them', () => {
    const { hub, connect } = setup();
    const a = connect('alice');
    const b = connect('alice');
    const other = connect('bob');
    expect(hub.kick('alice', 'bye')).toBe(2);
    expect(a.closed).toEqual({ code: CloseCode.Kicked, reason: 'bye' });
    expect(b.closed).toEqual({ code: CloseCode.Kicked, reason: 'bye' });
    expect(other.closed).toBeUndefined();
    expect(hub.isOnline('alice')).toBe(false);
    expect(hub.kick('alice')).toBe(0);
  });

  it('uses "kicked" as the default reason', () => {
    const { hub, connect } = setup();
    const a = connect('alice');
    hub.kick('alice');
    expect(a.closed?.reason).toBe('kicked');
  });

  it('refuses a reason that does not fit a close frame, closing nothing', () => {
    const { hub, connect } = setup();
    const a = connect('alice');
    expect(() => hub.kick('alice', 'x'.repeat(124))).toThrow(UidpushError);
    expect(a.closed).toBeUndefined();
    expect(hub.kick('alice', 'x'.repeat(123))).toBe(1);
  });
});

describe('Hub: a push made during a fan-out (the slow-consumer listener pushes)', () => {
  it('finishes the outer fan-out over every remaining connection and counts it right', () => {
    const late: { hub?: Hub<FakeRecipient> } = {};
    const nested: number[] = [];
    const made = setup({
      maxBufferedBytes: 100,
      slowConsumerPolicy: 'drop',
      // A program that tells someone else about the slow one, from inside the fan-out.
      onSlowConsumer: () => nested.push(late.hub?.sendToUid('watcher', 'alice is slow') ?? -1),
    });
    const hub = made.hub;
    late.hub = hub;
    const watcher = made.connect('watcher');
    const first = made.connect('alice');
    const stuck = made.connect('alice');
    const third = made.connect('alice');
    const fourth = made.connect('alice');
    stuck.bufferedBytes = 1000;
    expect(hub.sendToUid('alice', 'hello')).toBe(3);
    expect(nested).toEqual([1]);
    for (const c of [first, third, fourth]) expect(c.texts).toEqual(['hello']);
    expect(stuck.frames).toEqual([]);
    expect(watcher.texts).toEqual(['alice is slow']);
  });

  it('keeps a group publish going past a listener that pushes to the same uid', () => {
    const late: { hub?: Hub<FakeRecipient> } = {};
    const made = setup({
      maxBufferedBytes: 100,
      slowConsumerPolicy: 'close',
      onSlowConsumer: (_conn, uid) => {
        if (uid !== undefined) late.hub?.sendToUid(uid, 'you were slow');
      },
    });
    const hub = made.hub;
    late.hub = hub;
    const a1 = made.connect('a');
    const a2 = made.connect('a');
    const a3 = made.connect('a');
    const b = made.connect('b');
    made.registry.join('g', 'a');
    made.registry.join('g', 'b');
    a2.bufferedBytes = 1000;
    expect(hub.publish('g', 'news')).toEqual({ online: 2, connections: 3 });
    expect(a1.texts).toEqual(['news', 'you were slow']);
    // The nested push ran before the outer one reached a3: both arrive, once each.
    expect(a3.texts).toEqual(['you were slow', 'news']);
    expect(b.texts).toEqual(['news']);
    expect(a2.closed?.code).toBe(CloseCode.SlowConsumer);
  });
});

describe('retained pushes through a connection inbox position', () => {
  const place = (conn: FakeRecipient, last = 0, held?: []): void => {
    conn.inbox = { uid: 'u', device: 'd', epoch: 'e1', last, held, heldBytes: 0, resyncing: false };
  };
  const offsets = (conn: FakeRecipient): unknown[] => conn.texts.map((t) => (JSON.parse(t) as { offset?: number }).offset);

  it('writes a retained push that follows, skips one the connection had, and gives seed connections the bare text', () => {
    const { hub, connect } = setup();
    const v1 = connect('u', Codec.JsonV1);
    const seed = connect('u');
    place(v1, 1);
    hub.sendRetained('u', 'old', null, { offset: 1, epoch: 'e1' });
    hub.sendRetained('u', 'new', null, { offset: 2, epoch: 'e1', key: 'k' });
    expect(v1.texts).toEqual(['{"type":"message","scope":"uid","from":null,"to":"u","offset":2,"epoch":"e1","key":"k","data":"new"}']);
    expect(seed.texts).toEqual(['old', 'new']);
    expect(v1.inbox?.last).toBe(2);
  });

  it('holds what arrives during a replay, in order, and releases each retained push once', () => {
    const { hub, connect } = setup();
    const v1 = connect('u', Codec.JsonV1);
    place(v1, 0, []);
    hub.sendRetained('u', 'b', null, { offset: 2, epoch: 'e1' });
    hub.sendToUid('u', 'ephemeral');
    hub.sendRetained('u', 'c', null, { offset: 3, epoch: 'e1' });
    expect(v1.frames).toHaveLength(0);
    hub.writeEntry(v1, 'u', { offset: 1, data: '"a"', from: null, at: 0 }, 'e1');
    hub.writeEntry(v1, 'u', { offset: 2, data: '"b"', from: null, at: 0 }, 'e1');
    expect(hub.release(v1)).toBe('live');
    expect(offsets(v1)).toEqual([1, 2, undefined, 3]);
    expect(v1.inbox?.held).toBeUndefined();
  });

  it('holds a retained push that skips ahead and tells the gap listener; release stops at it until the gap is filled', () => {
    const { hub, connect } = setup();
    const v1 = connect('u', Codec.JsonV1);
    place(v1, 1);
    const gaps: FakeRecipient[] = [];
    hub.onGap = (conn) => gaps.push(conn);
    hub.sendRetained('u', 'four', null, { offset: 4, epoch: 'e1' });
    expect(gaps).toEqual([v1]);
    expect(v1.frames).toHaveLength(0);
    expect(hub.release(v1)).toBe('gap');
    hub.writeEntry(v1, 'u', { offset: 2, data: '2', from: null, at: 0 }, 'e1');
    hub.writeEntry(v1, 'u', { offset: 3, data: '3', from: null, at: 0 }, 'e1');
    expect(hub.release(v1)).toBe('live');
    expect(offsets(v1)).toEqual([2, 3, 4]);
  });

  it('treats a push of another epoch as a gap', () => {
    const { hub, connect } = setup();
    const v1 = connect('u', Codec.JsonV1);
    place(v1, 7);
    let told = 0;
    hub.onGap = () => told++;
    hub.sendRetained('u', 'x', null, { offset: 1, epoch: 'e2' });
    expect(told).toBe(1);
    expect(hub.release(v1)).toBe('gap');
  });

  it('applies the slow-consumer policy to what a replaying connection holds', () => {
    const { hub, connect } = setup({ maxBufferedBytes: 1024 });
    const v1 = connect('u', Codec.JsonV1);
    place(v1, 0, []);
    for (let i = 1; i <= 20; i++) hub.sendRetained('u', 'x'.repeat(100), null, { offset: i, epoch: 'e1' });
    expect(v1.closed?.code).toBe(CloseCode.SlowConsumer);
  });
});

/** A recipient that can be corked: what it was written while corked is sent at uncork. */
class CorkableRecipient extends FakeRecipient {
  corks = 0;
  uncorks = 0;
  /** Frames in each write that reached the "socket": one entry per syscall. */
  readonly writes: number[] = [];
  #corked = 0;
  #batch = 0;

  override writeFrame(frame: Buffer): boolean {
    if (!super.writeFrame(frame)) return false;
    if (this.#corked > 0) this.#batch++;
    else this.writes.push(1);
    return true;
  }

  cork(): void {
    this.corks++;
    this.#corked++;
  }

  uncork(): void {
    this.uncorks++;
    if (--this.#corked === 0 && this.#batch > 0) {
      this.writes.push(this.#batch);
      this.#batch = 0;
    }
  }
}

describe('Hub: write coalescing within a turn', () => {
  const corkable = (registry: Registry<FakeRecipient>, uid: string): CorkableRecipient => {
    const conn = new CorkableRecipient(uid);
    registry.bind(conn, uid);
    return conn;
  };

  it('writes a lone push at once, without corking', async () => {
    const { hub, registry } = setup();
    const a = corkable(registry, 'a');
    hub.sendToUid('a', 'one');
    expect(a.writes).toEqual([1]);
    await Promise.resolve();
    expect(a.corks).toBe(0);
    expect(a.texts).toEqual(['one']);
  });

  it('sends the first push at once and the rest of the turn in one corked write, in order', async () => {
    const { hub, registry } = setup({ maxBufferedBytes: 1 << 20 });
    const a = corkable(registry, 'a');
    for (let i = 0; i < 10; i++) hub.sendToUid('a', `m${String(i)}`);
    expect(a.corks).toBe(1);
    expect(a.uncorks).toBe(0);
    await Promise.resolve();
    expect(a.uncorks).toBe(1);
    expect(a.writes).toEqual([1, 9]);
    expect(a.texts).toEqual(Array.from({ length: 10 }, (_, i) => `m${String(i)}`));
  });

  it('starts a new turn after the microtask: the next push goes out at once again', async () => {
    const { hub, registry } = setup();
    const a = corkable(registry, 'a');
    hub.sendToUid('a', 'x');
    hub.sendToUid('a', 'y');
    await Promise.resolve();
    hub.sendToUid('a', 'z');
    expect(a.writes).toEqual([1, 1, 1]);
    expect(a.corks).toBe(1);
    await Promise.resolve();
    expect(a.uncorks).toBe(1);
  });

  it('corks only the connections written twice, and uncorks each once', async () => {
    const { hub, registry } = setup();
    const a = corkable(registry, 'a');
    const b = corkable(registry, 'b');
    hub.sendToUid('a', '1');
    hub.sendToUid('b', '1');
    hub.sendToUid('a', '2');
    hub.sendToUid('a', '3');
    await Promise.resolve();
    expect([a.corks, a.uncorks, b.corks, b.uncorks]).toEqual([1, 1, 0, 0]);
    expect(a.writes).toEqual([1, 2]);
    expect(b.writes).toEqual([1]);
  });

  it('still applies the send-buffer cap to corked writes', () => {
    const { hub, registry } = setup({ maxBufferedBytes: 64 });
    const a = corkable(registry, 'a');
    // The fake counts nothing as buffered: the cap is checked per write before coalescing.
    a.bufferedBytes = 60;
    hub.sendToUid('a', 'x'.repeat(10));
    expect(a.closed?.code).toBe(CloseCode.SlowConsumer);
  });
});

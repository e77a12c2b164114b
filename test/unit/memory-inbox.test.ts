import { afterEach, describe, expect, it } from 'vitest';
import { retainedMessage, type RetainedEnvelope } from '../../src/broker/broker.js';
import { LocalBroker } from '../../src/broker/local.js';
import { MemoryInbox } from '../../src/broker/memory-inbox.js';
import { MemoryCluster } from '../../src/broker/memory.js';
import { UnavailableError } from '../../src/core/errors.js';
import { RETENTION_DEFAULTS, type Retention } from '../../src/core/inbox.js';

/** A clock the test moves by hand. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
  };
}

const open: MemoryInbox[] = [];

/** A store on a hand-moved clock, recording what it publishes. */
function store(): { inbox: MemoryInbox; published: [string, string][]; advance: (ms: number) => void } {
  const c = clock();
  const published: [string, string][] = [];
  const inbox = new MemoryInbox((channel, message) => published.push([channel, message]), c.now);
  open.push(inbox);
  return { inbox, published, advance: c.advance };
}

afterEach(() => {
  for (const inbox of open.splice(0)) inbox.close();
});

const R: Retention = RETENTION_DEFAULTS;
const push = (data: string, more: { key?: string; idempotencyKey?: string } = {}) => ({ data, from: null, ...more });
const offsets = (inbox: MemoryInbox, uid: string, after = 0, retention = R): number[] =>
  inbox.read(uid, after, 1000, retention).entries.map((e) => e.offset);

describe('MemoryInbox offsets and epochs', () => {
  it('numbers each uid from 1, contiguously, apart from other uids', () => {
    const { inbox } = store();
    const a = [1, 2, 3].map((n) => inbox.append('alice', push(String(n)), undefined, R));
    const b = inbox.append('bob', push('"x"'), undefined, R);
    expect(a.map((p) => p.offset)).toEqual([1, 2, 3]);
    expect(a.every((p) => !p.duplicate)).toBe(true);
    expect(b.offset).toBe(1);
    expect(b.epoch).not.toBe(a[0]?.epoch);
    expect(inbox.read('alice', 0, 10, R).entries.map((e) => e.data)).toEqual(['1', '2', '3']);
  });

  it('keeps the epoch while the meta lives, and starts a new epoch from 1 once it expired', () => {
    const { inbox, advance } = store();
    const retention = { ...R, metaTtlMs: 10_000 };
    const first = inbox.append('alice', push('1'), undefined, retention);
    advance(9_999);
    expect(inbox.open('alice', 'phone', retention).epoch).toBe(first.epoch);
    // The open refreshed the meta: its lifetime counts from there.
    advance(9_999);
    const second = inbox.append('alice', push('2'), undefined, retention);
    expect(second).toEqual({ epoch: first.epoch, offset: 2, duplicate: false });
    advance(10_000);
    const third = inbox.append('alice', push('3'), undefined, retention);
    expect(third.epoch).not.toBe(first.epoch);
    expect(third.epoch).toMatch(/^[a-z0-9]{12}$/);
    expect(third.offset).toBe(1);
  });

  it('forgets expired meta in the sweep, without waiting for the uid to come back', () => {
    const { inbox, advance } = store();
    const retention = { ...R, metaTtlMs: 10_000 };
    inbox.append('alice', push('1'), undefined, retention);
    inbox.open('bob', 'phone', retention);
    advance(5_000);
    inbox.open('bob', 'phone', retention);
    advance(5_000);
    inbox.sweep();
    expect(inbox.stats).toEqual({ uids: 1, entries: 0, bytes: 0 });
    expect(inbox.info('alice', retention).epoch).toBeNull();
    expect(inbox.info('bob', retention).epoch).not.toBeNull();
  });
});

describe('MemoryInbox trimming', () => {
  it('keeps the newest `size` offsets and raises lowest past the ones it dropped', () => {
    const { inbox } = store();
    const retention = { ...R, size: 3 };
    for (let i = 1; i <= 5; i++) inbox.append('alice', push(String(i)), undefined, retention);
    expect(offsets(inbox, 'alice', 0, retention)).toEqual([3, 4, 5]);
    expect(inbox.open('alice', 'phone', retention)).toMatchObject({ top: 5, lowest: 3 });
    // Past the smallest ring, and through many laps of it: still the newest `size`.
    const big = { ...R, size: 20 };
    for (let i = 6; i <= 100; i++) inbox.append('alice', push(String(i)), undefined, big);
    expect(offsets(inbox, 'alice', 0, big)).toEqual(Array.from({ length: 20 }, (_, i) => 81 + i));
    expect(inbox.stats.entries).toBe(20);
  });

  it('refits to a smaller size given later, keeping the newest', () => {
    const { inbox } = store();
    for (let i = 1; i <= 10; i++) inbox.append('alice', push(String(i)), undefined, R);
    const small = { ...R, size: 4 };
    inbox.append('alice', push('11'), undefined, small);
    expect(offsets(inbox, 'alice', 0, small)).toEqual([8, 9, 10, 11]);
    expect(inbox.info('alice', small).retained).toEqual({ from: 8, to: 11, count: 4 });
  });

  it('drops entries older than ttlMs as the inbox is read, and lowest follows', () => {
    const { inbox, advance } = store();
    const retention = { ...R, ttlMs: 1_000 };
    inbox.append('alice', push('1'), undefined, retention);
    advance(500);
    inbox.append('alice', push('2'), undefined, retention);
    advance(500);
    expect(inbox.open('alice', 'phone', retention)).toMatchObject({ top: 2, lowest: 2 });
    expect(offsets(inbox, 'alice', 0, retention)).toEqual([2]);
    advance(500);
    expect(inbox.read('alice', 0, 10, retention)).toMatchObject({ top: 2, lowest: 3, entries: [] });
    expect(inbox.stats).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('drops old data in the sweep too, keeping the meta', () => {
    const { inbox, advance } = store();
    const retention = { ...R, ttlMs: 1_000 };
    const first = inbox.append('alice', push('1'), undefined, retention);
    advance(1_000);
    inbox.sweep();
    expect(inbox.stats).toEqual({ uids: 1, entries: 0, bytes: 0 });
    expect(inbox.info('alice', retention)).toMatchObject({ epoch: first.epoch, top: 1, retained: { from: 2, to: 1, count: 0 } });
  });
});

describe('MemoryInbox latest keys', () => {
  it('keeps only the newest entry of each key; read skips the hole, which still counts toward size', () => {
    const { inbox } = store();
    inbox.append('alice', push('"s1"', { key: 'status' }), undefined, R);
    inbox.append('alice', push('"m"'), undefined, R);
    inbox.append('alice', push('"s2"', { key: 'status' }), undefined, R);
    expect(inbox.read('alice', 0, 10, R).entries.map((e) => [e.offset, e.data])).toEqual([
      [2, '"m"'],
      [3, '"s2"'],
    ]);
    expect(inbox.info('alice', R).retained).toEqual({ from: 1, to: 3, count: 2 });
    // A device that saw nothing still recovers from 1: the hole lost it nothing.
    expect(inbox.open('alice', 'phone', R)).toMatchObject({ lowest: 1, top: 3 });
    const small = { ...R, size: 3 };
    inbox.append('alice', push('"s3"', { key: 'status' }), undefined, small);
    expect(inbox.read('alice', 0, 10, small).entries.map((e) => [e.offset, e.data])).toEqual([
      [2, '"m"'],
      [4, '"s3"'],
    ]);
    expect(inbox.info('alice', small).retained).toEqual({ from: 2, to: 4, count: 2 });
  });

  it('replaces the head entry of a key and moves the head past the hole', () => {
    const { inbox } = store();
    for (let i = 1; i <= 50; i++) inbox.append('alice', push(String(i), { key: 'k' }), undefined, R);
    expect(inbox.read('alice', 0, 10, R).entries.map((e) => e.offset)).toEqual([50]);
    expect(inbox.stats.entries).toBe(1);
  });
});

describe('MemoryInbox idempotency', () => {
  it('answers a retry with the first position, retaining and publishing nothing, until the window passes', () => {
    const { inbox, published, advance } = store();
    const retention = { ...R, idempotencyMs: 1_000 };
    const envelope: RetainedEnvelope = { channel: 'uidpush:{u:alice}', before: '{"o":', after: '}' };
    const first = inbox.append('alice', push('1', { idempotencyKey: 'k1' }), envelope, retention);
    advance(999);
    const retry = inbox.append('alice', push('1', { idempotencyKey: 'k1' }), envelope, retention);
    expect(retry).toEqual({ epoch: first.epoch, offset: 1, duplicate: true });
    expect(offsets(inbox, 'alice', 0, retention)).toEqual([1]);
    expect(published).toHaveLength(1);
    // Keys are per uid: the same key for bob is a push of its own.
    expect(inbox.append('bob', push('1', { idempotencyKey: 'k1' }), undefined, retention)).toMatchObject({ offset: 1, duplicate: false });
    advance(1);
    const late = inbox.append('alice', push('1', { idempotencyKey: 'k1' }), envelope, retention);
    expect(late).toEqual({ epoch: first.epoch, offset: 2, duplicate: false });
    expect(published).toHaveLength(2);
  });
});

describe('MemoryInbox devices', () => {
  it('registers a new device at the top with cursor null, and answers its cursor later', () => {
    const { inbox, advance } = store();
    inbox.append('alice', push('1'), undefined, R);
    inbox.append('alice', push('2'), undefined, R);
    const opened = inbox.open('alice', 'phone', R);
    expect(opened).toMatchObject({ top: 2, lowest: 1, cursor: null });
    expect(opened.epoch).toMatch(/^[a-z0-9]{12}$/);
    inbox.append('alice', push('3'), undefined, R);
    advance(10);
    expect(inbox.open('alice', 'phone', R)).toMatchObject({ top: 3, cursor: 2 });
    expect(inbox.info('alice', R).devices).toEqual([{ device: 'phone', cursor: 2, lastSeen: 1_000_010 }]);
  });

  it('opens an inbox a uid does not have yet: a new epoch at top 0', () => {
    const { inbox } = store();
    const opened = inbox.open('alice', 'phone', R);
    expect(opened).toMatchObject({ top: 0, lowest: 1, cursor: null });
    expect(inbox.append('alice', push('1'), undefined, R)).toEqual({ epoch: opened.epoch, offset: 1, duplicate: false });
  });

  it('forgets the device seen longest ago past maxDevices', () => {
    const { inbox, advance } = store();
    const retention = { ...R, maxDevices: 2 };
    inbox.open('alice', 'a', retention);
    advance(1);
    inbox.open('alice', 'b', retention);
    advance(1);
    inbox.open('alice', 'a', retention);
    advance(1);
    inbox.open('alice', 'c', retention);
    expect(inbox.info('alice', retention).devices.map((d) => d.device)).toEqual(['a', 'c']);
    expect(inbox.open('alice', 'b', retention).cursor).toBeNull();
  });

  it('refuses an ack from an unknown device, backwards or beyond the top, and moves the cursor otherwise', () => {
    const { inbox, advance } = store();
    for (let i = 1; i <= 3; i++) inbox.append('alice', push(String(i)), undefined, R);
    expect(inbox.ack('alice', 'phone', 1, R)).toEqual({ ok: false, reason: 'unknown_device', cursor: 0, top: 3 });
    expect(inbox.ack('nobody', 'phone', 1, R)).toEqual({ ok: false, reason: 'unknown_device', cursor: 0, top: 0 });
    inbox.open('alice', 'phone', R);
    inbox.append('alice', push('4'), undefined, R);
    expect(inbox.ack('alice', 'phone', 5, R)).toEqual({ ok: false, reason: 'beyond_top', cursor: 3, top: 4 });
    expect(inbox.ack('alice', 'phone', 2, R)).toEqual({ ok: false, reason: 'backwards', cursor: 3, top: 4 });
    advance(7);
    expect(inbox.ack('alice', 'phone', 4, R)).toEqual({ ok: true, cursor: 4 });
    expect(inbox.info('alice', R).devices).toEqual([{ device: 'phone', cursor: 4, lastSeen: 1_000_007 }]);
  });
});

describe('MemoryInbox memory budget', () => {
  it("takes idle uids' data first and keeps their meta: lowest = top + 1, epoch and top the same", () => {
    const { inbox, advance } = store();
    const data = 'x'.repeat(100);
    const entryBytes = data.length * 2 + 64;
    const retention = { ...R, memoryBytes: entryBytes * 4 };
    const alice = inbox.append('alice', push(data), undefined, retention);
    inbox.append('alice', push(data), undefined, retention);
    advance(1);
    inbox.append('bob', push(data), undefined, retention);
    advance(1);
    inbox.open('alice', 'phone', retention); // alice used after bob: bob is the idle one now
    inbox.append('carol', push(data), undefined, retention);
    expect(inbox.stats).toEqual({ uids: 3, entries: 4, bytes: entryBytes * 4 });
    inbox.append('carol', push(data), undefined, retention);
    expect(inbox.info('bob', retention)).toMatchObject({ top: 1, retained: { from: 2, to: 1, count: 0 } });
    expect(inbox.open('bob', 'phone', retention)).toMatchObject({ top: 1, lowest: 2 });
    expect(offsets(inbox, 'alice', 0, retention)).toEqual([1, 2]);
    expect(inbox.stats).toEqual({ uids: 3, entries: 4, bytes: entryBytes * 4 });
    // The next ones take alice's (used before carol), never carol's own.
    inbox.append('carol', push(data), undefined, retention);
    expect(inbox.info('alice', retention)).toMatchObject({ epoch: alice.epoch, top: 2, retained: { from: 3, to: 2, count: 0 } });
    expect(offsets(inbox, 'carol', 0, retention)).toEqual([1, 2, 3]);
  });

  it("trims the appending uid's oldest when it alone is over the budget, keeping the newest", () => {
    const { inbox } = store();
    const data = 'x'.repeat(100);
    const retention = { ...R, memoryBytes: (data.length * 2 + 64) * 2 };
    for (let i = 0; i < 5; i++) inbox.append('alice', push(data), undefined, retention);
    expect(offsets(inbox, 'alice', 0, retention)).toEqual([4, 5]);
    expect(inbox.open('alice', 'phone', retention)).toMatchObject({ lowest: 4, top: 5 });
    const huge = { ...R, memoryBytes: 10 };
    inbox.append('alice', push(data), undefined, huge);
    expect(offsets(inbox, 'alice', 0, huge)).toEqual([6]);
  });

  it('counts data, from and key', () => {
    const { inbox } = store();
    inbox.append('alice', { data: '1234', from: 'bob', key: 'k' }, undefined, R);
    expect(inbox.stats.bytes).toBe((4 + 3 + 1) * 2 + 64);
  });
});

describe('MemoryInbox reads and info', () => {
  it('reads pages of `limit` in offset order after the given offset', () => {
    const { inbox } = store();
    for (let i = 1; i <= 7; i++) inbox.append('alice', push(String(i)), undefined, R);
    const first = inbox.read('alice', 0, 3, R);
    expect(first.entries.map((e) => e.offset)).toEqual([1, 2, 3]);
    expect(first).toMatchObject({ lowest: 1, top: 7 });
    expect(offsets(inbox, 'alice', 3).slice(0, 3)).toEqual([4, 5, 6]);
    expect(inbox.read('alice', 6, 3, R).entries.map((e) => e.offset)).toEqual([7]);
    expect(inbox.read('alice', 7, 3, R).entries).toEqual([]);
    expect(inbox.read('alice', 0, 1, R).entries[0]).toEqual({ offset: 1, data: '1', from: null, key: undefined, at: 1_000_000 });
  });

  it('answers a read of a uid without an inbox with an empty page and epoch ""', () => {
    const { inbox } = store();
    expect(inbox.read('nobody', 0, 10, R)).toEqual({ epoch: '', lowest: 1, top: 0, entries: [] });
    expect(inbox.stats.uids).toBe(0);
  });

  it('describes an inbox: epoch, top, retained range and devices sorted by name', () => {
    const { inbox } = store();
    expect(inbox.info('alice', R)).toEqual({ uid: 'alice', epoch: null, top: 0, retained: { from: 1, to: 0, count: 0 }, devices: [] });
    const { epoch } = inbox.append('alice', push('1'), undefined, R);
    inbox.open('alice', 'tablet', R);
    inbox.open('alice', 'phone', R);
    inbox.append('alice', push('2'), undefined, R);
    expect(inbox.info('alice', R)).toEqual({
      uid: 'alice',
      epoch,
      top: 2,
      retained: { from: 1, to: 2, count: 2 },
      devices: [
        { device: 'phone', cursor: 1, lastSeen: 1_000_000 },
        { device: 'tablet', cursor: 1, lastSeen: 1_000_000 },
      ],
    });
  });
});

describe('MemoryInbox publishing', () => {
  it('publishes the exact retainedMessage text once per append, in the same step', () => {
    const { inbox, published } = store();
    const envelope: RetainedEnvelope = { channel: 'uidpush:{u:alice}', before: '{"v":2,"o":', after: ',"d":1}' };
    const first = inbox.append('alice', push('1'), envelope, R);
    expect(published).toEqual([['uidpush:{u:alice}', retainedMessage(envelope, 1, first.epoch)]]);
    expect(published[0]?.[1]).toBe(`{"v":2,"o":1,"ep":"${first.epoch}","d":1}`);
    inbox.append('alice', push('2'), envelope, R);
    inbox.append('alice', push('3'), undefined, R);
    expect(published.map(([, m]) => m)).toEqual([retainedMessage(envelope, 1, first.epoch), retainedMessage(envelope, 2, first.epoch)]);
  });
});

describe('MemoryInbox against a plain model', () => {
  it('reads what a list of every push, filtered by count, age and key, would read, as the size changes', () => {
    // A fixed seed: the same sequence every run.
    let seed = 42;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const { inbox, advance } = store();
    let retention = { ...R, size: 12, ttlMs: 5_000 };
    const all: { offset: number; key: string | undefined; at: number; gone: boolean }[] = [];
    let now = 1_000_000;
    for (let step = 0; step < 3_000; step++) {
      const r = random();
      if (r < 0.02) {
        retention = { ...retention, size: [3, 12, 30][Math.floor(random() * 3)] ?? 12 };
      } else if (r < 0.6) {
        const key = random() < 0.5 ? `k${String(Math.floor(random() * 3))}` : undefined;
        const { offset } = inbox.append('alice', push(String(step), { key }), undefined, retention);
        for (const e of all) if ((key !== undefined && e.key === key) || e.offset <= offset - retention.size) e.gone = true;
        all.push({ offset, key, at: now, gone: false });
        expect(offset).toBe(all.length);
      } else {
        const ms = Math.floor(random() * 1_500);
        advance(ms);
        now += ms;
      }
      const top = all.length;
      const expected = all.filter((e) => !e.gone && e.at + retention.ttlMs > now).map((e) => e.offset);
      const page = inbox.read('alice', 0, 100, retention);
      expect(page.entries.map((e) => e.offset)).toEqual(expected);
      expect(page.top).toBe(top);
      expect(page.lowest).toBeLessThanOrEqual(expected[0] ?? top + 1);
      expect(inbox.stats.entries).toBe(expected.length);
    }
  });
});

describe('MemoryInbox use order', () => {
  it('sweeps exactly the uids unused for metaTtlMs, however their uses interleaved', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const { inbox, advance } = store();
    const retention = { ...R, metaTtlMs: 50 };
    const lastUsed = new Map<string, number>();
    const withPhone = new Set<string>();
    let now = 1_000_000;
    for (let step = 0; step < 2_000; step++) {
      const uid = `u${String(Math.floor(random() * 20))}`;
      const r = random();
      // A uid whose meta expired comes back as new, whatever the sweep did first.
      if ((lastUsed.get(uid) ?? -Infinity) + retention.metaTtlMs <= now) {
        lastUsed.delete(uid);
        withPhone.delete(uid);
      }
      if (r < 0.4) {
        inbox.append(uid, push('1'), undefined, retention);
        lastUsed.set(uid, now);
      } else if (r < 0.8) {
        inbox.open(uid, 'phone', retention);
        lastUsed.set(uid, now);
        withPhone.add(uid);
      } else {
        // Only an ack that moves a cursor is a use.
        const { ok } = inbox.ack(uid, 'phone', inbox.info(uid, retention).top, retention);
        expect(ok).toBe(withPhone.has(uid));
        if (ok) lastUsed.set(uid, now);
      }
      const ms = Math.floor(random() * 5);
      advance(ms);
      now += ms;
      if (step % 50 === 0) {
        inbox.sweep();
        const live = [...lastUsed].filter(([, at]) => at + retention.metaTtlMs > now);
        expect(inbox.stats.uids).toBe(live.length);
      }
    }
  });
});

describe('MemoryInbox in the in-process brokers', () => {
  const channel = 'uidpush:{u:alice}';
  const envelope: RetainedEnvelope = { channel, before: '{"o":', after: '}' };

  it("MemoryCluster: one inbox for every node, each retained envelope routed to the subscribed nodes, the sender's included", async () => {
    const cluster = new MemoryCluster();
    open.push(cluster.inbox);
    const [a, b, c] = [cluster.createBroker('a'), cluster.createBroker('b'), cluster.createBroker('c')];
    const got = new Map<string, string[]>();
    const arrivals: Promise<void>[] = [];
    for (const broker of [a, b]) {
      const list: string[] = [];
      got.set(broker.nodeId, list);
      arrivals.push(
        new Promise<void>((resolve) => {
          void broker.start((_channel, message) => {
            if (list.push(message) === 2) resolve();
          });
        }),
      );
      await broker.subscribe(channel);
    }
    await c.start(() => expect.fail('c subscribed to nothing'));
    const first = a.inbox.append('alice', push('1'), envelope, R);
    const second = c.inbox.append('alice', push('2'), envelope, R);
    // In-process: a value at once, not a promise.
    expect(first).toMatchObject({ offset: 1, duplicate: false });
    expect(second).toMatchObject({ offset: 2 });
    const { epoch } = first as { epoch: string };
    await Promise.all(arrivals);
    const expected = [retainedMessage(envelope, 1, epoch), retainedMessage(envelope, 2, epoch)];
    expect(got.get('a')).toEqual(expected);
    expect(got.get('b')).toEqual(expected);
    expect(await b.inbox.read('alice', 0, 10, R)).toMatchObject({ epoch, top: 2 });
    for (const broker of [a, b, c]) await broker.close();
  });

  it('MemoryCluster: refuses an append while the cluster is down, retaining nothing', async () => {
    const cluster = new MemoryCluster();
    open.push(cluster.inbox);
    const broker = cluster.createBroker('a');
    await broker.start(() => undefined);
    cluster.up = false;
    await expect(broker.inbox.append('alice', push('1'), envelope, R)).rejects.toThrow(UnavailableError);
    expect(cluster.inbox.stats.entries).toBe(0);
    cluster.up = true;
    expect(broker.inbox.append('alice', push('1'), envelope, R)).toMatchObject({ offset: 1 });
    await broker.close();
  });

  it('LocalBroker: retains with plain answers and publishes nothing', async () => {
    const broker = new LocalBroker();
    const received: string[] = [];
    await broker.start((_channel, message) => received.push(message));
    await broker.subscribe(channel);
    expect(broker.inbox.append('alice', push('1'), envelope, R)).toMatchObject({ offset: 1, duplicate: false });
    expect(broker.inbox.open('alice', 'phone', R)).toMatchObject({ top: 1, cursor: null });
    // What a bus would take to deliver: a turn later, nothing came.
    await new Promise((resolve) => setImmediate(resolve));
    expect(received).toEqual([]);
    await broker.close();
  });
});

import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { RETENTION_DEFAULTS, type Retention } from '../../src/core/inbox.js';
import { silentLogger } from '../../src/core/types.js';
import { retainedMessage, type Broker, type RetainedEnvelope } from '../../src/broker/broker.js';
import { channel, encodeRetainedPush } from '../../src/broker/envelope.js';
import { redisKeys } from '../../src/broker/redis/keys.js';
import {
  dropNamespace,
  startRedisCluster,
  startRedisSentinel,
  startRedisServer,
  type RedisServerHandle,
} from '../helpers/redis-servers.js';
import { UnavailableError } from '../../src/core/errors.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere), as the contract suite:
// .ci/run starts one when none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const RETENTION: Retention = { ...RETENTION_DEFAULTS, size: 100, maxDevices: 4 };

/** One try, no reconnecting: with Redis absent the suite fails at once with its error. */
async function reachable(): Promise<void> {
  const probe = createClient({ url, socket: { reconnectStrategy: false } });
  probe.on('error', () => undefined);
  await probe.connect();
  probe.destroy();
}

/** Waits until the wall clock has passed `ms` (Redis's TIME reads the same clock here). */
async function clockPast(ms: number): Promise<void> {
  while (Date.now() <= ms) await new Promise((resolve) => setTimeout(resolve, Math.max(1, ms - Date.now() + 1)));
}

/** Messages on the uid channels a broker subscribed to, and a wait for the n-th. */
class Listener {
  readonly messages: string[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly onMessage = (_channel: string, message: string): void => {
    this.messages.push(message);
    this.#waiters = this.#waiters.filter((w) => {
      if (this.messages.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once `n` messages arrived in all. */
  until(n: number): Promise<void> {
    if (this.messages.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }
}

function envelopeFor(uid: string, data: string, key?: string): RetainedEnvelope {
  return { channel: channel.uid(uid), ...encodeRetainedPush('test-node', uid, data, null, key, undefined) };
}

/** Offsets of the retained push envelopes received. */
function offsetsOf(messages: readonly string[]): number[] {
  return messages.map((m) => (JSON.parse(m) as { off: number }).off);
}

interface Setup {
  /** A broker on a fresh namespace (the same one for every call of one test), started. */
  broker(listener?: Listener): Promise<Broker>;
  namespace: string;
}

/**
 * The inbox cases on the Redis at `redisUrl()`: each test gets a new namespace, dropped
 * after (when `drop` is given), and its brokers closed.
 */
function inboxCases(redisUrl: () => string, drop: ((namespace: string) => Promise<void>) | undefined, only?: 'key'): void {
  const brokers: Broker[] = [];
  const namespaces: string[] = [];

  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
    if (drop !== undefined) await Promise.all(namespaces.splice(0).map(drop));
  });

  function setup(): Setup {
    const namespace = `uidpush-inbox-${randomUUID()}`;
    namespaces.push(namespace);
    return {
      namespace,
      async broker(listener?: Listener): Promise<Broker> {
        const broker = createRedisBroker(redisUrl(), silentLogger, { namespace, presenceTtl: 5000 });
        brokers.push(broker);
        await broker.start(listener?.onMessage ?? (() => undefined));
        return broker;
      },
    };
  }

  it('gives offsets from 1 in order and publishes each as retainedMessage, in offset order', async () => {
    const listener = new Listener();
    const broker = await setup().broker(listener);
    await broker.subscribe(channel.uid('alice'));
    const envelopes = Array.from({ length: 20 }, (_, i) => envelopeFor('alice', JSON.stringify(`m${String(i)}`)));
    const appended = await Promise.all(
      envelopes.map(async (envelope, i) =>
        broker.inbox.append('alice', { data: JSON.stringify(`m${String(i)}`), from: null }, envelope, RETENTION),
      ),
    );
    expect(appended.map((a) => a.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const epoch = appended[0]?.epoch ?? '';
    expect(epoch).toMatch(/^[a-z0-9]{12}$/);
    expect(appended.every((a) => a.epoch === epoch && !a.duplicate)).toBe(true);
    await listener.until(20);
    expect(listener.messages).toEqual(envelopes.map((envelope, i) => retainedMessage(envelope, i + 1, epoch)));
    const page = await broker.inbox.read('alice', 0, 100, RETENTION);
    expect(page).toMatchObject({ epoch, top: 20, lowest: 1 });
    expect(page.entries.map((e) => [e.offset, e.data, e.from, e.key])).toEqual(
      Array.from({ length: 20 }, (_, i) => [i + 1, JSON.stringify(`m${String(i)}`), null, undefined]),
    );
  });

  it('gives concurrent appends from two brokers distinct contiguous offsets, seen in order', async () => {
    const s = setup();
    const listener = new Listener();
    const watcher = await s.broker(listener);
    await watcher.subscribe(channel.uid('bob'));
    const [a, b] = [await s.broker(), await s.broker()];
    const both = await Promise.all(
      Array.from({ length: 100 }, async (_, i) =>
        (i % 2 === 0 ? a : b).inbox.append('bob', { data: String(i), from: 'sender' }, envelopeFor('bob', String(i)), RETENTION),
      ),
    );
    expect(both.map((x) => x.offset).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await listener.until(100);
    expect(offsetsOf(listener.messages)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const page = await a.inbox.read('bob', 0, 100, RETENTION);
    expect(page.entries.every((e) => e.from === 'sender')).toBe(true);
  });

  it('trims by count: the newest size offsets stay and lowest follows', async () => {
    const broker = await setup().broker();
    const small = { ...RETENTION, size: 3 };
    for (let i = 1; i <= 5; i++) await broker.inbox.append('carol', { data: String(i), from: null }, undefined, small);
    const opened = await broker.inbox.open('carol', 'phone', small);
    expect(opened).toMatchObject({ top: 5, lowest: 3, cursor: null });
    const page = await broker.inbox.read('carol', 0, 10, small);
    expect(page).toMatchObject({ top: 5, lowest: 3 });
    expect(page.entries.map((e) => e.offset)).toEqual([3, 4, 5]);
    expect((await broker.inbox.info('carol', small)).retained).toEqual({ from: 3, to: 5, count: 3 });
  });

  it('runs the append script on the uid channel slot: uids in many slots, no CROSSSLOT', async () => {
    const listener = new Listener();
    const broker = await setup().broker(listener);
    // Braces in a uid must not move its hash tag: `}` first would make an empty tag.
    const uids = [...Array.from({ length: 12 }, (_, i) => `user-${String(i)}`), '}first', 'a}b', '{x}', '{', 'b{c}d'];
    for (const uid of uids) await broker.subscribe(channel.uid(uid));
    for (const uid of uids) {
      const appended = await broker.inbox.append(
        uid,
        { data: '"x"', from: null, idempotencyKey: 'once' },
        envelopeFor(uid, '"x"'),
        RETENTION,
      );
      expect(appended.offset).toBe(1);
      expect(await broker.inbox.open(uid, 'd', RETENTION)).toMatchObject({ top: 1, lowest: 1, cursor: null });
      expect(await broker.inbox.ack(uid, 'd', 1, RETENTION)).toEqual({ ok: true, cursor: 1 });
      expect((await broker.inbox.read(uid, 0, 10, RETENTION)).entries).toHaveLength(1);
      expect((await broker.inbox.info(uid, RETENTION)).devices).toMatchObject([{ device: 'd', cursor: 1 }]);
    }
    await listener.until(uids.length);
    expect(listener.messages.map((m) => (JSON.parse(m) as { uid: string }).uid).sort()).toEqual([...uids].sort());
  });

  it('keeps only the newest entry of a latest key', async () => {
    const broker = await setup().broker();
    await broker.inbox.append('dan', { data: '1', from: null, key: 'score' }, undefined, RETENTION);
    await broker.inbox.append('dan', { data: '2', from: null }, undefined, RETENTION);
    await broker.inbox.append('dan', { data: '3', from: 'x', key: 'score' }, undefined, RETENTION);
    await broker.inbox.append('dan', { data: '4', from: null, key: 'other' }, undefined, RETENTION);
    const page = await broker.inbox.read('dan', 0, 10, RETENTION);
    expect(page.entries.map((e) => [e.offset, e.data, e.from, e.key])).toEqual([
      [2, '2', null, undefined],
      [3, '3', 'x', 'score'],
      [4, '4', null, 'other'],
    ]);
    // A replaced value leaves a hole, not a gap: lowest stays 1.
    expect(page.lowest).toBe(1);
    expect((await broker.inbox.info('dan', RETENTION)).retained).toEqual({ from: 1, to: 4, count: 3 });
  });

  it('answers an idempotent retry with the first position: no new entry, no publish', async () => {
    const listener = new Listener();
    const broker = await setup().broker(listener);
    await broker.subscribe(channel.uid('eve'));
    const first = await broker.inbox.append('eve', { data: '"a"', from: null, idempotencyKey: 'k1' }, envelopeFor('eve', '"a"'), RETENTION);
    const retry = await broker.inbox.append('eve', { data: '"a"', from: null, idempotencyKey: 'k1' }, envelopeFor('eve', '"a"'), RETENTION);
    expect(first).toMatchObject({ offset: 1, duplicate: false });
    expect(retry).toEqual({ offset: 1, epoch: first.epoch, duplicate: true });
    const next = await broker.inbox.append('eve', { data: '"b"', from: null, idempotencyKey: 'k2' }, envelopeFor('eve', '"b"'), RETENTION);
    expect(next.offset).toBe(2);
    // The shard delivers in order: had the retry published, it would precede offset 2.
    await listener.until(2);
    expect(offsetsOf(listener.messages)).toEqual([1, 2]);
    expect((await broker.inbox.read('eve', 0, 10, RETENTION)).entries.map((e) => e.offset)).toEqual([1, 2]);
  });

  if (only === 'key') return;

  it('trims by age: entries older than ttlMs go, lowest follows', async () => {
    const broker = await setup().broker();
    const aging = { ...RETENTION, ttlMs: 400 };
    for (let i = 1; i <= 10; i++) await broker.inbox.append('fay', { data: String(i), from: null }, undefined, aging);
    const [newest] = (await broker.inbox.read('fay', 9, 1, aging)).entries;
    const at = newest?.at ?? 0;
    expect(Math.abs(at - Date.now())).toBeLessThan(1000);
    // Clock waits, not settle sleeps: what ages entries is Redis's clock passing a point
    // (the newest of the first ten entries' time plus 200, then plus the ttl).
    await clockPast(at + 200);
    for (let i = 11; i <= 12; i++) await broker.inbox.append('fay', { data: String(i), from: null }, undefined, aging);
    await clockPast(at + 400);
    const page = await broker.inbox.read('fay', 0, 100, aging);
    expect(page.entries.map((e) => e.offset)).toEqual([11, 12]);
    expect(page).toMatchObject({ top: 12, lowest: 11 });
    expect(await broker.inbox.open('fay', 'tab', aging)).toMatchObject({ top: 12, lowest: 11 });
  });

  it('keeps the epoch and top when the data expires: lowest is top + 1', async () => {
    const s = setup();
    const broker = await s.broker();
    const short = { ...RETENTION, ttlMs: 100 };
    let epoch = '';
    for (let i = 1; i <= 3; i++) epoch = (await broker.inbox.append('gus', { data: String(i), from: null }, undefined, short)).epoch;
    const [last] = (await broker.inbox.read('gus', 2, 1, short)).entries;
    // A clock wait: the stream's TTL (ttlMs from the last append) runs out.
    await clockPast((last?.at ?? 0) + 100);
    const probe = createClient({ url });
    await probe.connect();
    const key = redisKeys(s.namespace).inbox('gus');
    try {
      if (redisUrl() === url) expect(await probe.exists(key.stream)).toBe(0);
    } finally {
      probe.destroy();
    }
    expect(await broker.inbox.open('gus', 'phone', short)).toEqual({ epoch, top: 3, lowest: 4, cursor: null });
    expect(await broker.inbox.read('gus', 0, 10, short)).toEqual({ epoch, top: 3, lowest: 4, entries: [] });
    expect((await broker.inbox.info('gus', short)).retained).toEqual({ from: 4, to: 3, count: 0 });
    const next = await broker.inbox.append('gus', { data: '4', from: null }, undefined, short);
    expect(next).toEqual({ epoch, offset: 4, duplicate: false });
    expect(await broker.inbox.read('gus', 0, 10, short)).toMatchObject({ lowest: 4, entries: [{ offset: 4 }] });
  });

  it('makes a new epoch, and drops the old data, when the meta is gone', async () => {
    const s = setup();
    const broker = await s.broker();
    const first = await broker.inbox.append('hal', { data: '1', from: null }, undefined, RETENTION);
    await broker.inbox.open('hal', 'phone', RETENTION);
    const admin = createClient({ url: redisUrl() });
    await admin.connect();
    try {
      await admin.del(redisKeys(s.namespace).inbox('hal').meta);
    } finally {
      admin.destroy();
    }
    const opened = await broker.inbox.open('hal', 'phone', RETENTION);
    expect(opened.epoch).not.toBe(first.epoch);
    expect(opened).toMatchObject({ top: 0, lowest: 1, cursor: null });
    expect((await broker.inbox.read('hal', 0, 10, RETENTION)).entries).toEqual([]);
    expect(await broker.inbox.append('hal', { data: '2', from: null }, undefined, RETENTION)).toEqual({
      epoch: opened.epoch,
      offset: 1,
      duplicate: false,
    });
  });

  it('registers a new device at the top (cursor null), then returns its cursor', async () => {
    const broker = await setup().broker();
    for (let i = 0; i < 3; i++) await broker.inbox.append('ivy', { data: String(i), from: null }, undefined, RETENTION);
    const opened = await broker.inbox.open('ivy', 'phone', RETENTION);
    expect(opened).toMatchObject({ top: 3, lowest: 1, cursor: null });
    await broker.inbox.append('ivy', { data: '3', from: null }, undefined, RETENTION);
    expect(await broker.inbox.open('ivy', 'phone', RETENTION)).toEqual({ epoch: opened.epoch, top: 4, lowest: 1, cursor: 3 });
    expect(await broker.inbox.ack('ivy', 'phone', 4, RETENTION)).toEqual({ ok: true, cursor: 4 });
    expect((await broker.inbox.open('ivy', 'phone', RETENTION)).cursor).toBe(4);
    // An empty inbox is made on open: top 0, lowest 1.
    expect(await broker.inbox.open('new-user', 'phone', RETENTION)).toMatchObject({ top: 0, lowest: 1, cursor: null });
  });

  it('forgets the device seen longest ago past maxDevices', async () => {
    const broker = await setup().broker();
    const two = { ...RETENTION, maxDevices: 2 };
    // Clock waits of a millisecond: lastSeen is in ms, and ties would pick either.
    await broker.inbox.open('jo', 'a', two);
    await clockPast(Date.now());
    await broker.inbox.open('jo', 'b', two);
    await clockPast(Date.now());
    await broker.inbox.open('jo', 'a', two);
    await clockPast(Date.now());
    await broker.inbox.open('jo', 'c', two);
    expect((await broker.inbox.info('jo', two)).devices.map((d) => d.device)).toEqual(['a', 'c']);
    expect((await broker.inbox.open('jo', 'b', two)).cursor).toBeNull();
  });

  it('checks acks as core does: unknown device, beyond the top, backwards', async () => {
    const broker = await setup().broker();
    for (let i = 0; i < 5; i++) await broker.inbox.append('kim', { data: String(i), from: null }, undefined, RETENTION);
    expect(await broker.inbox.ack('kim', 'ghost', 1, RETENTION)).toEqual({ ok: false, reason: 'unknown_device', cursor: 0, top: 5 });
    await broker.inbox.open('kim', 'phone', RETENTION);
    expect(await broker.inbox.ack('kim', 'phone', 6, RETENTION)).toEqual({ ok: false, reason: 'beyond_top', cursor: 5, top: 5 });
    expect(await broker.inbox.ack('kim', 'phone', 4, RETENTION)).toEqual({ ok: false, reason: 'backwards', cursor: 5, top: 5 });
    expect(await broker.inbox.ack('kim', 'phone', 5, RETENTION)).toEqual({ ok: true, cursor: 5 });
    await broker.inbox.append('kim', { data: '5', from: null }, undefined, RETENTION);
    expect(await broker.inbox.ack('kim', 'phone', 6, RETENTION)).toEqual({ ok: true, cursor: 6 });
    expect(await broker.inbox.ack('nobody', 'phone', 0, RETENTION)).toEqual({ ok: false, reason: 'unknown_device', cursor: 0, top: 0 });
  });

  it('reports the inbox: epoch (null without one), retained range, devices by name', async () => {
    const broker = await setup().broker();
    expect(await broker.inbox.info('lee', RETENTION)).toEqual({
      uid: 'lee',
      epoch: null,
      top: 0,
      retained: { from: 1, to: 0, count: 0 },
      devices: [],
    });
    const before = Date.now();
    const { epoch } = await broker.inbox.append('lee', { data: '1', from: null }, undefined, RETENTION);
    await broker.inbox.open('lee', 'alpha', RETENTION);
    await broker.inbox.append('lee', { data: '2', from: null }, undefined, RETENTION);
    await broker.inbox.open('lee', 'zeta', RETENTION);
    const info = await broker.inbox.info('lee', RETENTION);
    expect(info).toMatchObject({ uid: 'lee', epoch, top: 2, retained: { from: 1, to: 2, count: 2 } });
    expect(info.devices.map((d) => [d.device, d.cursor])).toEqual([
      ['alpha', 1],
      ['zeta', 2],
    ]);
    for (const d of info.devices) expect(Math.abs(d.lastSeen - before)).toBeLessThan(1000);
  });

  it('sweeps latest keys whose entry was trimmed, past twice the size', async () => {
    const s = setup();
    const broker = await s.broker();
    const two = { ...RETENTION, size: 2 };
    for (let i = 1; i <= 10; i++) await broker.inbox.append('kai', { data: String(i), from: null, key: `k${String(i)}` }, undefined, two);
    const admin = createClient({ url });
    await admin.connect();
    try {
      expect(await admin.hLen(redisKeys(s.namespace).inbox('kai').latest)).toBeLessThanOrEqual(4);
    } finally {
      admin.destroy();
    }
    expect((await broker.inbox.read('kai', 0, 10, two)).entries.map((e) => e.key)).toEqual(['k9', 'k10']);
  });

  it('reads pages after an offset, up to the limit', async () => {
    const broker = await setup().broker();
    for (let i = 1; i <= 7; i++) await broker.inbox.append('max', { data: String(i), from: null }, undefined, RETENTION);
    expect((await broker.inbox.read('max', 2, 3, RETENTION)).entries.map((e) => e.offset)).toEqual([3, 4, 5]);
    expect((await broker.inbox.read('max', 7, 3, RETENTION)).entries).toEqual([]);
  });

  it('keeps from: null apart from a uid, and data byte for byte', async () => {
    const broker = await setup().broker();
    const data = JSON.stringify({ text: 'héllo 🌍', n: [1, 2, { deep: null }] });
    await broker.inbox.append('ned', { data, from: null }, undefined, RETENTION);
    await broker.inbox.append('ned', { data: '""', from: 'u}{x' }, undefined, RETENTION);
    const page = await broker.inbox.read('ned', 0, 10, RETENTION);
    expect(page.entries.map((e) => [e.data, e.from])).toEqual([
      [data, null],
      ['""', 'u}{x'],
    ]);
  });
}

describe('RedisInbox on one Redis', () => {
  beforeAll(reachable);
  inboxCases(
    () => url,
    (namespace) => dropNamespace(url, namespace),
  );

  it('refuses a namespace with braces: they would move the hash tag', () => {
    expect(() => createRedisBroker(url, silentLogger, { namespace: 'a{b}' })).toThrow(/must not contain/);
  });
});

describe('RedisInbox on a Redis Cluster', { timeout: 60_000 }, () => {
  let cluster: Awaited<ReturnType<typeof startRedisCluster>> | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(() => {
    cluster?.stop();
  });
  inboxCases(() => cluster?.url ?? '', undefined, 'key');
});

describe('RedisInbox through Sentinel', { timeout: 60_000 }, () => {
  let sentinel: Awaited<ReturnType<typeof startRedisSentinel>> | undefined;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  }, 60_000);
  afterAll(() => {
    sentinel?.stop();
  });
  inboxCases(() => sentinel?.url ?? '', undefined, 'key');
});

describe('RedisInbox on a Redis that lost its scripts (SCRIPT FLUSH, as after a restart)', () => {
  let redis: RedisServerHandle | undefined;
  beforeAll(async () => {
    redis = await startRedisServer();
  }, 30_000);
  afterAll(() => {
    redis?.stop();
  });

  it('retries a lone append, and in a burst retains only what keeps call order, refusing the rest with unavailable', async () => {
    const url = redis?.url ?? '';
    const namespace = `uidpush-inbox-${randomUUID()}`;
    const broker = createRedisBroker(url, silentLogger, { namespace });
    await broker.start(() => undefined);
    const admin = createClient({ url });
    await admin.connect();
    try {
      await admin.scriptFlush();
      const lone = await broker.inbox.append('solo', { data: '"a"', from: null }, undefined, RETENTION);
      expect(lone).toMatchObject({ offset: 1, duplicate: false });

      await admin.scriptFlush();
      const burst = await Promise.allSettled(
        Array.from({ length: 20 }, async (_, i) => broker.inbox.append('burst', { data: String(i), from: null }, undefined, RETENTION)),
      );
      const accepted: { call: number; offset: number }[] = [];
      burst.forEach((outcome, call) => {
        if (outcome.status === 'fulfilled') accepted.push({ call, offset: outcome.value.offset });
        else expect(outcome.reason).toBeInstanceOf(UnavailableError);
      });
      // Whatever was retained is in call order, offsets 1..n with no hole.
      expect(accepted.map((a) => a.offset)).toEqual(accepted.map((_, i) => i + 1));
      const page = await broker.inbox.read('burst', 0, 100, RETENTION);
      expect(page.entries.map((e) => Number(e.data))).toEqual(accepted.map((a) => a.call));
      // Loaded again: the next append goes by EVALSHA at once.
      expect(await broker.inbox.append('burst', { data: '"next"', from: null }, undefined, RETENTION)).toMatchObject({
        offset: accepted.length + 1,
      });
    } finally {
      admin.destroy();
      await broker.close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { boundedStores, Deadlines, InFlight } from '../../src/broker/bounds.js';
import type { BrokerStores } from '../../src/broker/broker.js';
import { ProgramErrorCode, UidpushError, UnavailableError } from '../../src/core/errors.js';
import { RETENTION_DEFAULTS } from '../../src/core/inbox.js';

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

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('Deadlines', () => {
  it('answers with the result when it comes in time', async () => {
    const c = clock();
    const deadlines = new Deadlines(2000, c.now);
    const d = deferred<number>();
    const raced = deadlines.race(() => d.promise, 'read');
    c.advance(1999);
    deadlines.sweep();
    d.resolve(7);
    await expect(raced).resolves.toBe(7);
    deadlines.close();
  });

  it('rejects with UnavailableError once the timeout passes, and drops the late result', async () => {
    const c = clock();
    const deadlines = new Deadlines(2000, c.now);
    const d = deferred<number>();
    let expired = 0;
    const raced = deadlines.race(
      () => d.promise,
      'read',
      () => {
        expired++;
      },
    );
    c.advance(2001);
    deadlines.sweep();
    await expect(raced).rejects.toThrow(UnavailableError);
    await expect(raced).rejects.toThrow('read: the broker did not answer within 2000 ms');
    d.resolve(7);
    d.reject(new Error('and a late failure'));
    await Promise.resolve();
    expect(expired).toBe(1);
    expect(deadlines.size).toBe(0);
    deadlines.close();
  });

  it("turns a failure of the call into UnavailableError, but passes the caller's own mistakes through", async () => {
    const deadlines = new Deadlines(2000);
    await expect(deadlines.race(() => Promise.reject(new Error('ECONNRESET')), 'read')).rejects.toMatchObject({
      name: 'UnavailableError',
      cause: { message: 'ECONNRESET' },
    });
    const mistake = new UidpushError(ProgramErrorCode.InvalidArgument, 'bad cursor');
    await expect(deadlines.race(() => Promise.reject(mistake), 'read')).rejects.toBe(mistake);
    // A call that throws at once is answered the same way, never thrown at the caller.
    await expect(
      deadlines.race(() => {
        throw new Error('sync');
      }, 'read'),
    ).rejects.toThrow(UnavailableError);
    deadlines.close();
  });

  it('expires deadlines in the order they were set, each once', () => {
    const c = clock();
    const deadlines = new Deadlines(100, c.now);
    const fired: number[] = [];
    for (let i = 0; i < 3; i++) {
      deadlines.add(() => fired.push(i));
      c.advance(10);
    }
    const cancel = deadlines.add(() => fired.push(99));
    cancel();
    c.advance(75); // the first is due (at 100), the second not yet (at 110)
    deadlines.sweep();
    expect(fired).toEqual([0]);
    c.advance(100);
    deadlines.sweep();
    deadlines.sweep();
    expect(fired).toEqual([0, 1, 2]);
    deadlines.close();
  });
});

describe('InFlight', () => {
  it('refuses past the byte bound until the broker answers', async () => {
    const inFlight = new InFlight(100, 2000);
    const first = deferred<undefined>();
    expect(inFlight.admits(60)).toBe(true);
    void inFlight.track(60, first.promise);
    expect(inFlight.admits(40)).toBe(true);
    expect(inFlight.admits(41)).toBe(false);
    first.resolve(undefined);
    await first.promise;
    await Promise.resolve();
    expect(inFlight.bytes).toBe(0);
    expect(inFlight.admits(100)).toBe(true);
  });

  it('refuses once the oldest publish in flight is older than the age bound, failed or answered ones aside', async () => {
    const c = clock();
    const inFlight = new InFlight(1_000_000, 2000, c.now);
    const oldest = deferred<undefined>();
    const newer = deferred<undefined>();
    void inFlight.track(10, oldest.promise).catch(() => undefined);
    c.advance(1500);
    void inFlight.track(10, newer.promise);
    c.advance(501);
    expect(inFlight.oldestAge()).toBe(2001);
    expect(inFlight.admits(1)).toBe(false);
    oldest.reject(new Error('connection lost'));
    await oldest.promise.catch(() => undefined);
    await Promise.resolve();
    expect(inFlight.count).toBe(1);
    expect(inFlight.oldestAge()).toBe(501);
    expect(inFlight.admits(1)).toBe(true);
  });
});

describe('boundedStores', () => {
  it('bounds every read and write of a store that never answers', async () => {
    const never = (): Promise<never> => new Promise<never>(() => undefined);
    const stores: BrokerStores = {
      presence: { setLocal: never, connections: never, holders: never, totals: never, connectionTotal: never, listUids: never },
      membership: { addMember: never, removeMember: never, members: never, groupsOf: never },
      revocations: { revoke: never, revocations: never },
      inbox: { append: never, open: never, read: never, ack: never, info: never },
    };
    const deadlines = new Deadlines(50);
    const { presence, membership, revocations, inbox } = boundedStores(stores, deadlines);
    const started = Date.now();
    // A store that answers with promises gets promises back: each raced against the deadline.
    const calls: Promise<unknown>[] = [
      presence.connections(['u']),
      presence.holders('u'),
      presence.totals(),
      presence.connectionTotal(),
      presence.listUids(null, 10),
      membership.addMember('g', 'u', { maxGroupsPerUid: 10, maxMembersPerGroup: 10 }),
      membership.removeMember('g', 'u'),
      membership.members('g'),
      membership.groupsOf('u'),
      revocations.revoke({ uid: 'u', before: 0, until: 1 }),
      revocations.revocations(),
      inbox.append('u', { data: '1', from: null }, undefined, RETENTION_DEFAULTS) as Promise<unknown>,
      inbox.open('u', 'phone', RETENTION_DEFAULTS) as Promise<unknown>,
      inbox.read('u', 0, 10, RETENTION_DEFAULTS) as Promise<unknown>,
      inbox.ack('u', 'phone', 1, RETENTION_DEFAULTS) as Promise<unknown>,
      inbox.info('u', RETENTION_DEFAULTS) as Promise<unknown>,
    ];
    const results = await Promise.allSettled(calls);
    for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { name: 'UnavailableError' } });
    // 50 ms and at most one sweep period (100 ms) late, with room for a loaded box.
    expect(Date.now() - started).toBeLessThan(1000);
    deadlines.close();
  });

  it("passes an in-process inbox's plain answers through, and turns its throws into UnavailableError", async () => {
    const deadlines = new Deadlines(50);
    const never = (): Promise<never> => new Promise<never>(() => undefined);
    const stores: BrokerStores = {
      presence: { setLocal: never, connections: never, holders: never, totals: never, connectionTotal: never, listUids: never },
      membership: { addMember: never, removeMember: never, members: never, groupsOf: never },
      revocations: { revoke: never, revocations: never },
      inbox: {
        append: () => ({ epoch: 'e1', offset: 1, duplicate: false }),
        open: () => {
          throw new Error('broken');
        },
        read: never,
        ack: never,
        info: never,
      },
    };
    const { inbox } = boundedStores(stores, deadlines);
    // A value, not a promise: nothing waits, so no deadline is set.
    expect(inbox.append('u', { data: '1', from: null }, undefined, RETENTION_DEFAULTS)).toEqual({
      epoch: 'e1',
      offset: 1,
      duplicate: false,
    });
    expect(deadlines.size).toBe(0);
    await expect(inbox.open('u', 'phone', RETENTION_DEFAULTS)).rejects.toThrow(UnavailableError);
    deadlines.close();
  });
});

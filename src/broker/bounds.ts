import { UidpushError, UnavailableError } from '../core/errors.js';
import type { MaybePromise } from '../core/service.js';
import type { BrokerStores, InboxStore, MembershipStore, PresenceStore, RevocationStore } from './broker.js';

/**
 * Bounds on what waits for a broker: a deadline on each call, and a cap in bytes and age
 * on the publishes in flight. A broker that stops answering (a frozen Redis, a stuck
 * primary) then costs callers at most the deadline, and the node at most the cap.
 */

/** How often expired deadlines are found: a deadline fires at most this late. */
const SWEEP_MS = 100;

interface Waiter {
  at: number;
  expire: (() => void) | undefined;
}

/**
 * Deadlines of one fixed length, found by one sweeping timer rather than a timer per call
 * (node-redis's per-command AbortSignal.timeout() measured as about half of a node's CPU
 * per cross-node push, bench/README.md). Every deadline has the same length, so they expire
 * in the order they were set: a FIFO, swept from its head.
 */
export class Deadlines {
  readonly timeoutMs: number;
  readonly #queue: Waiter[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #now: () => number;

  constructor(timeoutMs: number, now: () => number = Date.now) {
    this.timeoutMs = timeoutMs;
    this.#now = now;
  }

  /** Calls `expire` once `timeoutMs` has passed, unless the returned cancel runs first. */
  add(expire: () => void): () => void {
    const waiter: Waiter = { at: this.#now() + this.timeoutMs, expire };
    this.#queue.push(waiter);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => {
        this.sweep();
      }, SWEEP_MS);
      this.#timer.unref();
    }
    return () => {
      waiter.expire = undefined;
    };
  }

  /**
   * Settles like `call()`, or rejects with an {@link UnavailableError} after `timeoutMs`;
   * a late result is dropped. A failure becomes an UnavailableError too (whatever a broker
   * call fails with, the broker is what failed), except a {@link UidpushError}: the
   * caller's own mistake, such as a cursor the server did not make.
   */
  race<T>(call: () => Promise<T>, what: string, onExpire?: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let promise: Promise<T>;
      try {
        promise = call();
      } catch (err) {
        promise = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      let settled = false;
      const cancel = this.add(() => {
        if (settled) return;
        settled = true;
        onExpire?.();
        reject(new UnavailableError(`${what}: the broker did not answer within ${String(this.timeoutMs)} ms`));
      });
      promise.then(
        (value) => {
          if (settled) return;
          settled = true;
          cancel();
          resolve(value);
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          cancel();
          reject(
            err instanceof UnavailableError || err instanceof UidpushError
              ? err
              : new UnavailableError(`${what}: the broker failed`, { cause: err }),
          );
        },
      );
    });
  }

  /** Fires every deadline that has passed. @internal the timer calls it; tests may. */
  sweep(): void {
    const now = this.#now();
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head];
      if (waiter === undefined || waiter.at > now) break;
      this.#head++;
      const expire = waiter.expire;
      waiter.expire = undefined;
      expire?.();
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
      clearInterval(this.#timer);
      this.#timer = undefined;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** Deadlines set and not yet swept (cancelled ones included until their time). */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Stops the timer; pending deadlines never fire. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#head = 0;
  }
}

interface Flight {
  at: number;
  bytes: number;
  done: boolean;
}

/**
 * The publishes handed to a broker and not yet answered: their bytes, and the age of the
 * oldest. Past either bound, new publishes are refused ({@link admits} is false) until the
 * broker answers or fails the ones in flight. A publish is counted until the broker
 * settles it, not until its caller's deadline: a command already written to a frozen
 * Redis's socket still holds its memory.
 */
export class InFlight {
  readonly maxBytes: number;
  readonly maxAgeMs: number;
  #bytes = 0;
  #count = 0;
  readonly #queue: Flight[] = [];
  #head = 0;
  readonly #now: () => number;

  constructor(maxBytes: number, maxAgeMs: number, now: () => number = Date.now) {
    this.maxBytes = maxBytes;
    this.maxAgeMs = maxAgeMs;
    this.#now = now;
  }

  /** Bytes of the publishes in flight. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Publishes in flight. */
  get count(): number {
    return this.#count;
  }

  /** Age of the oldest publish in flight, in ms; 0 when none is. */
  oldestAge(): number {
    this.#advance();
    const oldest = this.#queue[this.#head];
    return oldest === undefined ? 0 : this.#now() - oldest.at;
  }

  /** Whether `bytes` more may be published now. */
  admits(bytes: number): boolean {
    return this.#bytes + bytes <= this.maxBytes && this.oldestAge() <= this.maxAgeMs;
  }

  /** Counts `bytes` until `publish` settles; returns `publish`. */
  track<T>(bytes: number, publish: Promise<T>): Promise<T> {
    const flight: Flight = { at: this.#now(), bytes, done: false };
    this.#queue.push(flight);
    this.#bytes += bytes;
    this.#count++;
    const land = (): void => {
      flight.done = true;
      this.#bytes -= bytes;
      this.#count--;
      this.#advance();
    };
    publish.then(land, land);
    return publish;
  }

  #advance(): void {
    while (this.#queue[this.#head]?.done === true) this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

/**
 * The presence store with a deadline on every read: each answers within
 * `deadlines.timeoutMs` or rejects with an {@link UnavailableError}, as does any failure
 * of the store. `setLocal` is passed through: a write the store keeps trying itself (Redis
 * rewrites presence after an outage), on every login, so it gets no deadline of its own.
 */
export function boundedPresence(store: PresenceStore, deadlines: Deadlines): PresenceStore {
  return {
    setLocal: (uid, connections) => store.setLocal(uid, connections),
    connections: (uids) => deadlines.race(() => store.connections(uids), 'presence read'),
    holders: (uid) => deadlines.race(() => store.holders(uid), 'presence read'),
    totals: () => deadlines.race(() => store.totals(), 'totals read'),
    connectionTotal: () => deadlines.race(() => store.connectionTotal(), 'connection total read'),
    listUids: (cursor, limit) => deadlines.race(() => store.listUids(cursor, limit), 'uid list read'),
  };
}

/** The membership store with a deadline on every call (see {@link boundedPresence}). */
export function boundedMembership(store: MembershipStore, deadlines: Deadlines): MembershipStore {
  return {
    addMember: (group, uid, limits) => deadlines.race(() => store.addMember(group, uid, limits), 'group join'),
    removeMember: (group, uid) => deadlines.race(() => store.removeMember(group, uid), 'group leave'),
    members: (group) => deadlines.race(() => store.members(group), 'group read'),
    groupsOf: (uid) => deadlines.race(() => store.groupsOf(uid), 'groups read'),
  };
}

/** The revocation store with a deadline on every call (see {@link boundedPresence}). */
export function boundedRevocations(store: RevocationStore, deadlines: Deadlines): RevocationStore {
  return {
    revoke: (revocation) => deadlines.race(() => store.revoke(revocation), 'token revocation'),
    revocations: () => deadlines.race(() => store.revocations(), 'token cut-offs read'),
  };
}

/**
 * The inbox store with a deadline on every call (see {@link boundedPresence}). An answer
 * that is already there (an in-process store's plain value) is passed through as it is:
 * it cannot be late, and the single process keeps paying no promise per push.
 */
export function boundedInbox(store: InboxStore, deadlines: Deadlines): InboxStore {
  const bound = <T>(call: () => MaybePromise<T>, what: string): MaybePromise<T> => {
    let answer: MaybePromise<T>;
    try {
      answer = call();
    } catch (err) {
      // Failed the way a late store fails: as an UnavailableError, never thrown at the caller.
      return deadlines.race(() => Promise.reject(err instanceof Error ? err : new Error(String(err))), what);
    }
    return answer instanceof Promise ? deadlines.race(() => Promise.resolve(answer), what) : answer;
  };
  return {
    append: (uid, entry, envelope, retention) => bound(() => store.append(uid, entry, envelope, retention), 'inbox append'),
    open: (uid, device, retention) => bound(() => store.open(uid, device, retention), 'inbox open'),
    read: (uid, after, limit, retention) => bound(() => store.read(uid, after, limit, retention), 'inbox read'),
    ack: (uid, device, upTo, retention) => bound(() => store.ack(uid, device, upTo, retention), 'inbox ack'),
    info: (uid, retention) => bound(() => store.info(uid, retention), 'inbox read'),
  };
}

/** A broker's stores, each bounded. */
export function boundedStores(stores: BrokerStores, deadlines: Deadlines): BrokerStores {
  return {
    presence: boundedPresence(stores.presence, deadlines),
    membership: boundedMembership(stores.membership, deadlines),
    revocations: boundedRevocations(stores.revocations, deadlines),
    inbox: boundedInbox(stores.inbox, deadlines),
  };
}

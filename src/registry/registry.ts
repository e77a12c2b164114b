import type { Uid } from '../core/types.js';

/**
 * The uid <-> connection index. A pure data structure: no I/O, no timers.
 *
 * Most uids hold one connection, so a uid maps straight to its connection and only grows
 * a Set when a second one binds; at 100,000 connections that saves a Set per uid.
 * Empty entries are deleted at once, so nothing is left behind after the last close.
 *
 * @typeParam C - the connection type; the registry only compares identities.
 */
export class Registry<C extends object> {
  readonly #byUid = new Map<Uid, C | Set<C>>();
  readonly #byConn = new Map<C, Uid>();
  readonly #onCount: ((uid: Uid, connections: number) => void) | undefined;

  /**
   * @param onCount - told a uid's new connection count after every bind and unbind (0: the
   *   uid went offline), e.g. to subscribe to its channel while it is online here.
   */
  constructor(onCount?: (uid: Uid, connections: number) => void) {
    this.#onCount = onCount;
  }

  /** Number of uids with at least one bound connection. */
  get uidCount(): number {
    return this.#byUid.size;
  }

  /** Number of bound connections, over all uids. */
  get connectionCount(): number {
    return this.#byConn.size;
  }

  /**
   * Binds `conn` to `uid`, in O(1). A connection binds once: binding it again to another
   * uid moves it. Returns true when this is the uid's first connection.
   */
  bind(conn: C, uid: Uid): boolean {
    const previous = this.#byConn.get(conn);
    if (previous === uid) return false;
    if (previous !== undefined) this.unbind(conn);
    this.#byConn.set(conn, uid);
    const entry = this.#byUid.get(uid);
    if (entry === undefined) {
      this.#byUid.set(uid, conn);
      this.#onCount?.(uid, 1);
      return true;
    }
    if (entry instanceof Set) entry.add(conn);
    else this.#byUid.set(uid, new Set([entry, conn]));
    this.#onCount?.(uid, this.countOf(uid));
    return false;
  }

  /**
   * Unbinds `conn`, in O(1), leaving the uid's other connections bound. Returns the uid it
   * was bound to, or undefined if it was not bound.
   */
  unbind(conn: C): Uid | undefined {
    const uid = this.#byConn.get(conn);
    if (uid === undefined) return undefined;
    this.#byConn.delete(conn);
    const entry = this.#byUid.get(uid);
    if (entry === conn) {
      this.#byUid.delete(uid);
    } else if (entry instanceof Set) {
      entry.delete(conn);
      if (entry.size === 1) {
        // Back to the single-connection form, so memory matches a fresh bind.
        const [only] = entry;
        if (only !== undefined) this.#byUid.set(uid, only);
      }
    }
    this.#onCount?.(uid, this.countOf(uid));
    return uid;
  }

  /** The uid `conn` is bound to, if any. */
  uidOf(conn: C): Uid | undefined {
    return this.#byConn.get(conn);
  }

  /** Whether `uid` has at least one bound connection. */
  has(uid: Uid): boolean {
    return this.#byUid.has(uid);
  }

  /** Number of connections bound to `uid`. */
  countOf(uid: Uid): number {
    const entry = this.#byUid.get(uid);
    if (entry === undefined) return 0;
    return entry instanceof Set ? entry.size : 1;
  }

  /**
   * Calls `fn` for each connection of `uid` and returns how many there were. A callback
   * may unbind the connection it is given.
   */
  forEachOf(uid: Uid, fn: (conn: C) => void): number {
    const entry = this.#byUid.get(uid);
    if (entry === undefined) return 0;
    if (!(entry instanceof Set)) {
      fn(entry);
      return 1;
    }
    // Copy: a callback that unbinds could shrink the Set back to a single entry.
    const conns = [...entry];
    for (const conn of conns) fn(conn);
    return conns.length;
  }

  /** Iterates every bound connection. Unbinding during the iteration is safe. */
  connections(): IterableIterator<C> {
    return this.#byConn.keys();
  }

  /** Iterates every online uid, in the order they came online. */
  uids(): IterableIterator<Uid> {
    return this.#byUid.keys();
  }
}

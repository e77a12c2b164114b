import type { Group, Uid } from '../core/types.js';
import { GroupIndex } from './groups.js';

/**
 * What a registry tells its listeners (the node, metrics, later webhooks). Each is called
 * synchronously, inside the bind or unbind (or join or leave) that caused it.
 */
export interface RegistryListener {
  /** A uid's connection count here changed, after every bind and unbind (0: none left). */
  count?(uid: Uid, connections: number): void;
  /** A uid's first connection here bound (called before `count`). */
  online?(uid: Uid): void;
  /** A uid's last connection here unbound (after `count`, and after the uid left its groups here). */
  offline?(uid: Uid): void;
  /** A group got its first local member. */
  groupActive?(group: Group): void;
  /** A group lost its last local member. */
  groupIdle?(group: Group): void;
}

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
  readonly #listeners: RegistryListener[] = [];
  /** Group membership of the uids online here: the local group-interest index. */
  readonly #groups = new GroupIndex();

  /** Adds a listener; listeners are called in the order they were added. */
  listen(listener: RegistryListener): void {
    this.#listeners.push(listener);
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
      for (const l of this.#listeners) l.online?.(uid);
      this.#count(uid, 1);
      return true;
    }
    if (entry instanceof Set) entry.add(conn);
    else this.#byUid.set(uid, new Set([entry, conn]));
    this.#count(uid, this.countOf(uid));
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
    const left = this.countOf(uid);
    this.#count(uid, left);
    if (left === 0) {
      for (const group of [...this.#groups.groupsOf(uid)]) this.leave(group, uid);
      for (const l of this.#listeners) l.offline?.(uid);
    }
    return uid;
  }

  #count(uid: Uid, connections: number): void {
    for (const l of this.#listeners) l.count?.(uid, connections);
  }

  /**
   * Records that `uid`, online here, is a member of `group`, so a publish to the group
   * reaches its connections here. Membership of offline uids is the store's, not this
   * index's: a uid's groups here go when its last connection does. Returns false if `uid`
   * is not online here or already was a member.
   */
  join(group: Group, uid: Uid): boolean {
    if (!this.#byUid.has(uid)) return false;
    const first = this.#groups.members(group).size === 0;
    if (!this.#groups.add(group, uid)) return false;
    if (first) for (const l of this.#listeners) l.groupActive?.(group);
    return true;
  }

  /** Removes `uid` from `group` here; returns false if it was not a member here. */
  leave(group: Group, uid: Uid): boolean {
    if (!this.#groups.remove(group, uid)) return false;
    if (this.#groups.members(group).size === 0) for (const l of this.#listeners) l.groupIdle?.(group);
    return true;
  }

  /** The local members of `group` (live view: do not change the group while iterating). */
  members(group: Group): ReadonlySet<Uid> {
    return this.#groups.members(group);
  }

  /** The groups `uid` is a member of here. */
  groupsOf(uid: Uid): ReadonlySet<Group> {
    return this.#groups.groupsOf(uid);
  }

  /** Whether `uid` is a member of `group` here. */
  isMember(group: Group, uid: Uid): boolean {
    return this.#groups.has(group, uid);
  }

  /** Number of groups with a member online here. */
  get groupCount(): number {
    return this.#groups.size;
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

import { UnavailableError } from '../../core/errors.js';
import type { UidPage } from '../../core/service.js';
import type { Uid } from '../../core/types.js';
import { compareUids, cursorAfter, uidOfCursor } from '../../core/uid-order.js';
import type { PresenceStore } from '../broker.js';
import type { RedisLike } from './client.js';
import type { RedisKeys } from './keys.js';

/** A promise and its settlers; its rejection is handled already (callers may ignore it). */
interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/**
 * Presence in Redis: per node a hash uid -> connections and the same uids in a sorted set
 * (byte order, for paging), both expiring unless the node refreshes them, and a node key
 * holding its connection total. This node's own counts are kept here too: they are the
 * source every write and rewrite comes from.
 */
export class RedisPresence implements PresenceStore {
  readonly #redis: RedisLike;
  readonly #key: RedisKeys;
  readonly #nodeId: string;
  readonly #ttl: number;
  readonly #markDown: (err: unknown, source: string) => void;
  /** This node's connections in all, as last written to its node key. */
  #total = 0;
  #writtenTotal = -1;
  /** This node's connection count per uid: the source of its presence in Redis. */
  readonly #local = new Map<Uid, number>();
  /** Presence changes not yet written, flushed once per tick in one pipeline. */
  readonly #dirty = new Set<Uid>();
  /** The flush scheduled, which every write since the last one waits for. */
  #next: Deferred | undefined;
  #live: { at: number; nodes: Promise<string[]> } | undefined;

  constructor(redis: RedisLike, key: RedisKeys, nodeId: string, ttl: number, markDown: (err: unknown, source: string) => void) {
    this.#redis = redis;
    this.#key = key;
    this.#nodeId = nodeId;
    this.#ttl = ttl;
    this.#markDown = markDown;
  }

  /** Resolves once the tick's pipeline that carries this write has been answered. */
  setLocal(uid: Uid, connections: number): Promise<void> {
    this.#total += connections - (this.#local.get(uid) ?? 0);
    if (connections === 0) this.#local.delete(uid);
    else this.#local.set(uid, connections);
    this.#dirty.add(uid);
    return this.#scheduleFlush();
  }

  /** Whether this node holds any connection. */
  get holding(): boolean {
    return this.#local.size > 0;
  }

  /**
   * Keeps this node (and its presence) alive for another `ttl`. Resolves with whether the
   * presence that should be there was there; rejects when Redis fails.
   */
  async keepAlive(): Promise<boolean> {
    const holding = this.#local.size > 0;
    const [, , hash, ordered] = await Promise.all([
      this.#writeTotal(),
      this.#redis.sAdd(this.#key.nodes, this.#nodeId),
      this.#redis.pExpire(this.#key.presence(this.#nodeId), this.#ttl),
      this.#redis.pExpire(this.#key.uids(this.#nodeId), this.#ttl),
    ]);
    return !(holding && this.#local.size > 0 && (hash === 0 || ordered === 0));
  }

  /** Writes every uid of this node again: its presence was lost (an outage, a failover). */
  rewrite(): void {
    for (const uid of this.#local.keys()) this.#dirty.add(uid);
    void this.#scheduleFlush();
  }

  /** A clean leave: this node's keys deleted, so its uids read offline at once. */
  leave(): Promise<unknown> {
    // One key per command: in a Redis Cluster the keys live in different slots.
    return Promise.all([
      this.#redis.del(this.#key.node(this.#nodeId)),
      this.#redis.del(this.#key.presence(this.#nodeId)),
      this.#redis.del(this.#key.uids(this.#nodeId)),
      this.#redis.sRem(this.#key.nodes, this.#nodeId),
    ]);
  }

  async connections(uids: readonly Uid[]): Promise<number[]> {
    if (uids.length === 0) return [];
    const nodes = await this.#liveNodes();
    const perNode = await Promise.all(nodes.map((node) => this.#redis.hmGet(this.#key.presence(node), [...uids])));
    return uids.map((_, i) => perNode.reduce((sum, counts) => sum + Number(counts[i] ?? 0), 0));
  }

  async holders(uid: Uid): Promise<string[]> {
    const nodes = await this.#liveNodes();
    const counts = await Promise.all(nodes.map((node) => this.#redis.hGet(this.#key.presence(node), uid)));
    return nodes.filter((_, i) => Number(counts[i] ?? 0) > 0);
  }

  // A uid online on two nodes counts once: only reading every node's uids tells.
  async totals(): Promise<{ onlineUids: number; connections: number }> {
    const nodes = await this.#liveNodes();
    const [keys, connections] = await Promise.all([
      Promise.all(nodes.map((node) => this.#redis.hKeys(this.#key.presence(node)))),
      this.#connectionTotal(nodes),
    ]);
    const uids = new Set<string>();
    for (const list of keys) for (const uid of list) uids.add(uid);
    return { onlineUids: uids.size, connections };
  }

  async connectionTotal(): Promise<number> {
    return this.#connectionTotal(await this.#liveNodes());
  }

  // Each node's uids in byte order: a page costs one range read of at most `limit`
  // uids per node, merged, whatever the number online.
  async listUids(cursor: string | null, limit: number): Promise<UidPage> {
    const nodes = await this.#liveNodes();
    const after = cursor === null ? '-' : `(${uidOfCursor(cursor)}`;
    const perNode = await Promise.all(
      nodes.map((node) => this.#redis.zRange(this.#key.uids(node), after, '+', { BY: 'LEX', LIMIT: { offset: 0, count: limit } })),
    );
    // A node that returned `limit` uids may hold more; any uid it did not return sorts
    // after all `limit` it did, so the first `limit` of the merge are the page.
    const merged = [...new Set(perNode.flat())].sort(compareUids);
    const uids = merged.slice(0, limit);
    const more = merged.length > limit || perNode.some((got) => got.length === limit);
    const last = uids.at(-1);
    return { uids, nextCursor: more && last !== undefined ? cursorAfter(last) : null };
  }

  #scheduleFlush(): Promise<void> {
    if (this.#next === undefined) {
      this.#next = deferred();
      setImmediate(this.#flush);
    }
    return this.#next.promise;
  }

  /** The node key: alive while it exists; its value is this node's connection total. */
  #writeTotal(): Promise<unknown> {
    this.#writtenTotal = this.#total;
    return this.#redis.set(this.#key.node(this.#nodeId), String(this.#total), { expiration: { type: 'PX', value: this.#ttl } });
  }

  readonly #flush = (): void => {
    const done = this.#next;
    this.#next = undefined;
    if (!this.#redis.isReady) {
      // Kept in #dirty: written once Redis is back (the broker's recovery rewrites all).
      done?.reject(new UnavailableError('redis: not connected; presence is written once it is back'));
      return;
    }
    if (this.#dirty.size === 0) {
      done?.resolve();
      return;
    }
    const set: Record<string, string> = {};
    const gone: string[] = [];
    for (const uid of this.#dirty) {
      const n = this.#local.get(uid);
      if (n === undefined) gone.push(uid);
      else set[uid] = String(n);
    }
    this.#dirty.clear();
    const key = this.#key.presence(this.#nodeId);
    const ordered = this.#key.uids(this.#nodeId);
    const online = Object.keys(set);
    const writes: Promise<unknown>[] = [];
    if (online.length > 0) {
      writes.push(
        this.#redis.hSet(key, set),
        this.#redis.pExpire(key, this.#ttl),
        // Re-adding a member with the same score changes nothing: no need to tell a new
        // uid from a changed count.
        this.#redis.zAdd(
          ordered,
          online.map((value) => ({ score: 0, value })),
        ),
        this.#redis.pExpire(ordered, this.#ttl),
      );
    }
    if (gone.length > 0) writes.push(this.#redis.hDel(key, gone), this.#redis.zRem(ordered, gone));
    if (this.#total !== this.#writtenTotal) writes.push(this.#writeTotal());
    Promise.all(writes).then(
      () => done?.resolve(),
      (err: unknown) => {
        this.#markDown(err, 'presence write');
        done?.reject(err);
      },
    );
  };

  /**
   * Ids of the live nodes, read at most once a second: a presence query then costs one
   * HMGET per node. A dead node's presence hash expires with it, so a stale list only
   * costs a lookup that finds nothing.
   */
  #liveNodes(): Promise<string[]> {
    const now = Date.now();
    if (this.#live === undefined || now - this.#live.at > 1000) {
      const nodes = this.#readLiveNodes();
      this.#live = { at: now, nodes };
      // A failed read is not cached: the next query tries again.
      nodes.catch(() => {
        if (this.#live?.nodes === nodes) this.#live = undefined;
      });
    }
    return this.#live.nodes;
  }

  /** Reads the live nodes; the dead ones' leftovers are removed. */
  async #readLiveNodes(): Promise<string[]> {
    const nodes = await this.#redis.sMembers(this.#key.nodes);
    if (nodes.length === 0) return [];
    const alive = await Promise.all(nodes.map((node) => this.#redis.exists(this.#key.node(node))));
    const dead = nodes.filter((_, i) => alive[i] === 0);
    if (dead.length > 0) {
      const leftovers = dead.flatMap((node) => [this.#key.presence(node), this.#key.uids(node)]);
      Promise.all([this.#redis.sRem(this.#key.nodes, dead), ...leftovers.map((key) => this.#redis.del(key))]).catch(() => undefined);
    }
    return nodes.filter((_, i) => alive[i] === 1);
  }

  /** One GET per live node: each node keeps its own total in its node key. */
  async #connectionTotal(nodes: string[]): Promise<number> {
    const totals = await Promise.all(nodes.map((node) => this.#redis.get(this.#key.node(node))));
    return totals.reduce((sum: number, n) => sum + Number(n ?? 0), 0);
  }
}

import { randomUUID } from 'node:crypto';
import { createClient, createCluster, createSentinel } from '@redis/client';
import type { UidPage } from '../core/service.js';
import type { Group, Logger, Uid } from '../core/types.js';
import type { Broker, ClusterStore, UidRevocation } from './broker.js';
import { compareUids, cursorAfter, uidOfCursor } from '../core/uid-order.js';

/** Options of the Redis broker. */
export interface RedisBrokerOptions {
  /**
   * How long this node's presence outlives it, in ms; refreshed every third of it.
   * @defaultValue 15000
   */
  presenceTtl?: number | undefined;
  /** This node's id; random by default. */
  nodeId?: string | undefined;
  /**
   * Namespace of every key and channel, so several clusters can share one Redis.
   * @defaultValue 'uidpush'
   */
  namespace?: string | undefined;
  /**
   * How long Redis may take to answer, in ms: a probe is sent every second (or every half
   * of this, if shorter), and while one has waited longer than this the broker is not
   * ready (`/readyz` answers 503) and the outage is logged.
   * @defaultValue 2000
   */
  timeout?: number | undefined;
}

function keys(ns: string) {
  return {
    nodes: `${ns}:nodes`,
    node: (node: string) => `${ns}:node:${node}`,
    presence: (node: string) => `${ns}:presence:${node}`,
    /** The same uids in a sorted set of equal scores: byte order, for paging by range. */
    uids: (node: string) => `${ns}:uids:${node}`,
    group: (group: Group) => `${ns}:group:${group}`,
    groupsOf: (uid: Uid) => `${ns}:groups-of:${uid}`,
    /** Token cut-offs: one hash, uid -> `<before>:<until>` (ms); few fields, read whole. */
    revoked: `${ns}:revoked`,
    channel: (name: string) => `${ns}|${name}`,
  };
}

/**
 * The commands the broker uses, shared by node-redis's standalone, cluster and sentinel
 * clients; one of the three is made from the URL.
 */
interface RedisLike {
  readonly isReady: boolean;
  readonly isOpen: boolean;
  on(event: 'error' | 'ready', listener: (err?: unknown) => void): unknown;
  connect(): Promise<unknown>;
  destroy(): unknown;
  duplicate(): RedisLike;
  sPublish(channel: string, message: string): Promise<unknown>;
  sSubscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  sUnsubscribe(channel: string): Promise<unknown>;
  set(key: string, value: string, options: { expiration: { type: 'PX'; value: number } }): Promise<unknown>;
  sAdd(key: string, members: string | string[]): Promise<number>;
  sRem(key: string, members: string | string[]): Promise<number>;
  pExpire(key: string, ms: number, mode?: 'NX' | 'GT'): Promise<number>;
  hGet(key: string, field: string): Promise<string | null>;
  hGetAll(key: string): Promise<Record<string, string>>;
  hSet(key: string, fields: Record<string, string>): Promise<unknown>;
  hDel(key: string, fields: string[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
  exists(key: string): Promise<number>;
  sMembers(key: string): Promise<string[]>;
  sIsMember(key: string, member: string): Promise<number>;
  hmGet(key: string, fields: string[]): Promise<(string | null)[]>;
  get(key: string): Promise<string | null>;
  hKeys(key: string): Promise<string[]>;
  zAdd(key: string, members: { score: number; value: string }[]): Promise<unknown>;
  zRem(key: string, members: string[]): Promise<unknown>;
  zRange(key: string, min: string, max: string, options: { BY: 'LEX'; LIMIT: { offset: number; count: number } }): Promise<string[]>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/** A stored `<before>:<until>`; undefined when absent or unreadable (then pruned). */
function parseRevocation(uid: Uid, text: string | null): UidRevocation | undefined {
  if (text === null) return undefined;
  const [before, until] = text.split(':').map(Number);
  if (before === undefined || until === undefined || !Number.isFinite(before) || !Number.isFinite(until)) return undefined;
  return { uid, before, until };
}

/**
 * Adds ARGV[1] to the set KEYS[1] unless it has ARGV[2] members already: 1 added, 0 was
 * a member, -1 full. Atomic in Redis, so no number of nodes joining at once takes the set
 * past its cap. One key per script: a uid's groups and a group's members live in
 * different slots of a Redis Cluster.
 */
const CAPPED_SADD = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

/**
 * Builds the client for a URL:
 * - `redis://[user:pass@]host:port[/db]` or `rediss://...`: one Redis;
 * - `redis+cluster://host:port,host:port`: a Redis Cluster, from its seed nodes;
 * - `redis+sentinel://host:port,host:port/<master name>`: the master Sentinel names.
 */
function clientFor(url: string, reconnectStrategy: (retries: number) => number): RedisLike {
  const cluster = /^redis\+cluster:\/\/(.+)$/.exec(url);
  if (cluster?.[1] !== undefined) {
    const rootNodes = cluster[1].split(',').map((hostPort) => ({ url: `redis://${hostPort.replace(/\/$/, '')}` }));
    return createCluster({ rootNodes, defaults: { socket: { reconnectStrategy } } });
  }
  const sentinel = /^redis\+sentinel:\/\/([^/]+)\/(.+)$/.exec(url);
  if (sentinel?.[1] !== undefined && sentinel[2] !== undefined) {
    const sentinelRootNodes = sentinel[1].split(',').map((hostPort) => {
      const [host = '127.0.0.1', port = '26379'] = hostPort.split(':');
      return { host, port: Number(port) };
    });
    return createSentinel({
      name: sentinel[2],
      sentinelRootNodes,
      // Without a reserved client, node-redis leases a pooled master client per command
      // asynchronously, and commands sent in one turn can reach Redis out of order: pushes
      // to one uid would arrive reordered (the contract suite's burst case).
      reserveClient: true,
      nodeClientOptions: { socket: { reconnectStrategy } },
    });
  }
  // Fail fast while Redis is away instead of queueing stale pushes for later. No
  // per-command timeout: node-redis arms an AbortSignal.timeout() for each command, which
  // measured as about half of a node's CPU per cross-node push (bench/README.md); a lost
  // connection still fails every pending command, and a dead peer is found by TCP keepalive.
  return createClient({
    url,
    disableOfflineQueue: true,
    commandOptions: { timeout: 0 },
    socket: { reconnectStrategy },
  });
}

/**
 * The Redis broker (`--redis redis://...`): sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7)
 * on per-uid and per-group channels that a node subscribes to only while it holds that uid
 * or a member, so a targeted push reaches only the nodes that hold the uid; one channel
 * for broadcast. Presence is a hash per node whose lifetime the node keeps refreshing:
 * when a node dies, its uids read offline within `presenceTtl`. Group membership lives in
 * Redis sets, so every node answers the same.
 *
 * When Redis goes away, publishes fail (the caller logs them and still delivers locally),
 * `isReady()` is false, and the client reconnects with backoff; on reconnect the node
 * resubscribes and writes its presence again. A Redis that stays connected but stops
 * answering makes `isReady()` false within `timeout` (a probe every second).
 */
export function createRedisBroker(url: string, log: Logger, options: RedisBrokerOptions = {}): Broker {
  return new RedisBroker(url, log, options);
}

class RedisBroker implements Broker {
  readonly nodeId: string;
  readonly store: ClusterStore;
  readonly #log: Logger;
  readonly #ttl: number;
  readonly #key: ReturnType<typeof keys>;
  readonly #pub: RedisLike;
  readonly #sub: RedisLike;
  /** Channels this node wants, resubscribed after a reconnect. */
  readonly #channels = new Set<string>();
  /** Whether an outage was logged and no heartbeat has succeeded since. */
  #outage = false;
  /** This node's connections in all, as last written to its node key. */
  #total = 0;
  #writtenTotal = -1;
  /** This node's connection count per uid: the source of its presence in Redis. */
  readonly #local = new Map<Uid, number>();
  /** Presence changes not yet written, flushed once per tick in one pipeline. */
  readonly #dirty = new Set<Uid>();
  #flushScheduled = false;
  #timer: NodeJS.Timeout | undefined;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  #closed = false;
  #wasDown = false;
  #live: { at: number; nodes: Promise<string[]> } | undefined;
  readonly #timeout: number;
  #probeTimer: NodeJS.Timeout | undefined;
  /** When the probe that Redis has not answered yet was sent. */
  #probeSentAt: number | undefined;

  constructor(url: string, log: Logger, options: RedisBrokerOptions) {
    this.nodeId = options.nodeId ?? randomUUID();
    this.#log = log;
    this.#ttl = options.presenceTtl ?? 15_000;
    this.#timeout = options.timeout ?? 2000;
    this.#key = keys(options.namespace ?? 'uidpush');
    const reconnectStrategy = (retries: number): number =>
      // Full jitter, capped at 2 s: a restarted Redis is not hit by every node at once.
      Math.floor(Math.random() * Math.min(2000, 50 * 2 ** Math.min(retries, 6)));
    this.#pub = clientFor(url, reconnectStrategy);
    this.#sub = this.#pub.duplicate();
    for (const [name, client] of [
      ['publisher', this.#pub],
      ['subscriber', this.#sub],
    ] as const) {
      client.on('error', (err: unknown) => {
        this.#markDown(err, name);
      });
      client.on('ready', () => {
        if (name === 'publisher') this.#recover();
      });
    }
    this.store = this.#makeStore();
  }

  async start(onMessage: (channel: string, message: string) => void): Promise<void> {
    this.#onMessage = onMessage;
    await Promise.all([this.#pub.connect(), this.#sub.connect()]);
    for (const name of this.#channels) this.#ssubscribe(name);
    this.#heartbeat();
    this.#timer = setInterval(() => {
      this.#heartbeat();
    }, Math.max(100, Math.floor(this.#ttl / 3)));
    this.#timer.unref();
    this.#probeTimer = setInterval(() => {
      this.#probe();
    }, Math.max(50, Math.min(1000, Math.floor(this.#timeout / 2))));
    this.#probeTimer.unref();
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#pub.sPublish(this.#key.channel(channel), message);
  }

  subscribe(channel: string): void {
    if (this.#channels.has(channel)) return;
    this.#channels.add(channel);
    if (this.#sub.isOpen) this.#ssubscribe(channel);
  }

  unsubscribe(channel: string): void {
    if (!this.#channels.delete(channel)) return;
    if (this.#sub.isOpen) {
      this.#sub.sUnsubscribe(this.#key.channel(channel)).catch((err: unknown) => {
        this.#log.debug({ err, channel }, 'redis: unsubscribe failed');
      });
    }
  }

  isReady(): boolean {
    return this.#pub.isReady && this.#sub.isReady && !this.#probeOverdue();
  }

  #probeOverdue(): boolean {
    return this.#probeSentAt !== undefined && Date.now() - this.#probeSentAt > this.#timeout;
  }

  /**
   * A connected Redis that stops answering (frozen, overloaded, a network that drops
   * packets) fails no command and closes no socket: only a round trip that takes too long
   * tells. One probe at a time; a frozen Redis answers it when it thaws.
   */
  #probe(): void {
    if (this.#probeSentAt !== undefined) {
      if (this.#probeOverdue()) this.#markDown(new Error(`no answer within ${String(this.#timeout)} ms`), 'probe');
      return;
    }
    if (!this.#pub.isReady) return;
    this.#probeSentAt = Date.now();
    // A keyed command: a Redis Cluster client has no keyless PING to route.
    this.#pub.exists(this.#key.node(this.nodeId)).then(
      () => {
        this.#probeSentAt = undefined;
      },
      (err: unknown) => {
        this.#probeSentAt = undefined;
        this.#markDown(err, 'probe');
      },
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearInterval(this.#probeTimer);
    try {
      if (this.isReady()) {
        // A clean leave: no need to wait for the presence to expire.
        // One key per command: in a Redis Cluster the keys live in different slots.
        const leave = Promise.all([
          this.#pub.del(this.#key.node(this.nodeId)),
          this.#pub.del(this.#key.presence(this.nodeId)),
          this.#pub.del(this.#key.uids(this.nodeId)),
          this.#pub.sRem(this.#key.nodes, this.nodeId),
        ]);
        // A Redis that stops answering now must not hold the shutdown: the presence then
        // expires on its own.
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(new Error(`no answer within ${String(this.#timeout)} ms`));
          }, this.#timeout);
        });
        await Promise.race([leave, late]).finally(() => {
          clearTimeout(timer);
        });
      }
    } catch (err) {
      this.#log.debug({ err }, 'redis: clean leave failed');
    }
    this.#pub.destroy();
    this.#sub.destroy();
  }

  #ssubscribe(channel: string): void {
    this.#sub
      .sSubscribe(this.#key.channel(channel), (message: string) => {
        this.#onMessage?.(channel, message);
      })
      .catch((err: unknown) => {
        this.#log.warn({ err, channel }, 'redis: subscribe failed');
      });
  }

  /** Redis failed us: serve local clients only, and rewrite the presence once it answers. */
  #markDown(err: unknown, source: string): void {
    if (this.#closed) return;
    // One line per outage, however many writes fail during it.
    if (!this.#outage) this.#log.error({ err, source }, 'redis: connection lost; serving local clients only');
    this.#outage = true;
    this.#wasDown = true;
  }

  /** After an outage: this node's presence was lost with Redis (or expired); write it again. */
  #recover(): void {
    if (!this.#wasDown || !this.#pub.isReady) return;
    this.#log.debug({}, 'redis: rewriting presence');
    this.#wasDown = false;
    this.#rewritePresence();
    this.#heartbeat();
  }

  #rewritePresence(): void {
    for (const uid of this.#local.keys()) this.#dirty.add(uid);
    this.#scheduleFlush();
  }

  /** Keeps this node (and its presence) alive in Redis for another `presenceTtl`. */
  #heartbeat(): void {
    // Clients that do not say 'ready' after a reconnect (cluster, sentinel) recover here.
    if (this.#wasDown) {
      this.#recover();
      return;
    }
    if (!this.#pub.isReady) return;
    const holding = this.#local.size > 0;
    Promise.all([
      this.#writeTotal(),
      this.#pub.sAdd(this.#key.nodes, this.nodeId),
      this.#pub.pExpire(this.#key.presence(this.nodeId), this.#ttl),
      this.#pub.pExpire(this.#key.uids(this.nodeId), this.#ttl),
    ]).then(
      ([, , hash, ordered]) => {
        if (this.#outage) {
          this.#outage = false;
          this.#log.info({}, 'redis: back');
        }
        // Presence that should be there and is not was lost without a disconnect (a
        // failover that dropped unreplicated writes, a flushed Redis): write it again.
        if (holding && this.#local.size > 0 && (hash === 0 || ordered === 0)) {
          this.#log.warn({}, 'redis: this node\'s presence is missing; rewriting it');
          this.#rewritePresence();
        }
      },
      (err: unknown) => {
        // A Redis Cluster reports a failing node as 'node-error', not 'error': a failed
        // heartbeat is how this node learns of it.
        this.#markDown(err, 'heartbeat');
      },
    );
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** The node key: alive while it exists; its value is this node's connection total. */
  #writeTotal(): Promise<unknown> {
    this.#writtenTotal = this.#total;
    return this.#pub.set(this.#key.node(this.nodeId), String(this.#total), { expiration: { type: 'PX', value: this.#ttl } });
  }

  #flush(): void {
    if (!this.#pub.isReady || this.#dirty.size === 0) return;
    const set: Record<string, string> = {};
    const gone: string[] = [];
    for (const uid of this.#dirty) {
      const n = this.#local.get(uid);
      if (n === undefined) gone.push(uid);
      else set[uid] = String(n);
    }
    this.#dirty.clear();
    const key = this.#key.presence(this.nodeId);
    const ordered = this.#key.uids(this.nodeId);
    const online = Object.keys(set);
    const writes: Promise<unknown>[] = [];
    if (online.length > 0) {
      writes.push(
        this.#pub.hSet(key, set),
        this.#pub.pExpire(key, this.#ttl),
        // Re-adding a member with the same score changes nothing: no need to tell a new
        // uid from a changed count.
        this.#pub.zAdd(ordered, online.map((value) => ({ score: 0, value }))),
        this.#pub.pExpire(ordered, this.#ttl),
      );
    }
    if (gone.length > 0) writes.push(this.#pub.hDel(key, gone), this.#pub.zRem(ordered, gone));
    if (this.#total !== this.#writtenTotal) writes.push(this.#writeTotal());
    Promise.all(writes).catch((err: unknown) => {
      this.#markDown(err, 'presence write');
    });
  }

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
    const nodes = await this.#pub.sMembers(this.#key.nodes);
    if (nodes.length === 0) return [];
    const alive = await Promise.all(nodes.map((node) => this.#pub.exists(this.#key.node(node))));
    const dead = nodes.filter((_, i) => alive[i] === 0);
    if (dead.length > 0) {
      const leftovers = dead.flatMap((node) => [this.#key.presence(node), this.#key.uids(node)]);
      Promise.all([this.#pub.sRem(this.#key.nodes, dead), ...leftovers.map((key) => this.#pub.del(key))]).catch(() => undefined);
    }
    return nodes.filter((_, i) => alive[i] === 1);
  }

  /** One GET per live node: each node keeps its own total in its node key. */
  async #connectionTotal(nodes: string[]): Promise<number> {
    const totals = await Promise.all(nodes.map((node) => this.#pub.get(this.#key.node(node))));
    return totals.reduce((sum: number, n) => sum + Number(n ?? 0), 0);
  }

  #makeStore(): ClusterStore {
    return {
      setLocal: (uid, connections) => {
        this.#total += connections - (this.#local.get(uid) ?? 0);
        if (connections === 0) this.#local.delete(uid);
        else this.#local.set(uid, connections);
        this.#dirty.add(uid);
        this.#scheduleFlush();
      },
      connections: async (uids) => {
        if (uids.length === 0) return [];
        const nodes = await this.#liveNodes();
        const perNode = await Promise.all(nodes.map((node) => this.#pub.hmGet(this.#key.presence(node), [...uids])));
        return uids.map((_, i) => perNode.reduce((sum, counts) => sum + Number(counts[i] ?? 0), 0));
      },
      // A uid online on two nodes counts once: only reading every node's uids tells.
      totals: async () => {
        const nodes = await this.#liveNodes();
        const [keys, connections] = await Promise.all([
          Promise.all(nodes.map((node) => this.#pub.hKeys(this.#key.presence(node)))),
          this.#connectionTotal(nodes),
        ]);
        const uids = new Set<string>();
        for (const list of keys) for (const uid of list) uids.add(uid);
        return { onlineUids: uids.size, connections };
      },
      connectionTotal: async () => this.#connectionTotal(await this.#liveNodes()),
      // Each node's uids in byte order: a page costs one range read of at most `limit`
      // uids per node, merged, whatever the number online.
      listUids: async (cursor: string | null, limit: number): Promise<UidPage> => {
        const nodes = await this.#liveNodes();
        const after = cursor === null ? '-' : `(${uidOfCursor(cursor)}`;
        const perNode = await Promise.all(
          nodes.map((node) => this.#pub.zRange(this.#key.uids(node), after, '+', { BY: 'LEX', LIMIT: { offset: 0, count: limit } })),
        );
        // A node that returned `limit` uids may hold more; any uid it did not return sorts
        // after all `limit` it did, so the first `limit` of the merge are the page.
        const merged = [...new Set(perNode.flat())].sort(compareUids);
        const uids = merged.slice(0, limit);
        const more = merged.length > limit || perNode.some((got) => got.length === limit);
        const last = uids.at(-1);
        return { uids, nextCursor: more && last !== undefined ? cursorAfter(last) : null };
      },
      // The uid's set first, then the group's; a join the group refuses gives its place in
      // the uid's set back. Each set's cap holds exactly; meanwhile (one round trip) a
      // refused join may hold a slot of the uid's set, so a concurrent join of the same
      // uid near its cap may be refused too.
      addMember: async (group, uid, limits) => {
        const capped = async (key: string, member: string, max: number): Promise<number> =>
          Number(await this.#pub.eval(CAPPED_SADD, { keys: [key], arguments: [member, String(max)] }));
        const onUid = await capped(this.#key.groupsOf(uid), group, limits.maxGroupsPerUid);
        if (onUid === -1) {
          // Already a member is never refused, even by a full uid.
          return (await this.#pub.sIsMember(this.#key.group(group), uid)) === 1 ? 'member' : 'uid_full';
        }
        const onGroup = await capped(this.#key.group(group), uid, limits.maxMembersPerGroup);
        if (onGroup === -1) {
          if (onUid === 1) await this.#pub.sRem(this.#key.groupsOf(uid), group);
          return 'group_full';
        }
        return onGroup === 1 ? 'added' : 'member';
      },
      removeMember: async (group, uid) => {
        const [removed] = await Promise.all([this.#pub.sRem(this.#key.group(group), uid), this.#pub.sRem(this.#key.groupsOf(uid), group)]);
        return removed === 1;
      },
      members: (group) => this.#pub.sMembers(this.#key.group(group)),
      groupsOf: (uid) => this.#pub.sMembers(this.#key.groupsOf(uid)),
      revoke: async ({ uid, before, until }) => {
        const key = this.#key.revoked;
        const known = parseRevocation(uid, await this.#pub.hGet(key, uid));
        const value = `${Math.max(before, known?.before ?? 0)}:${Math.max(until, known?.until ?? 0)}`;
        const ttl = Math.max(1, until - Date.now());
        // The hash lives as long as its longest cut-off: NX arms a fresh key, GT only
        // ever lengthens it (a node with a shorter revokeTtl cannot cut others short).
        await Promise.all([this.#pub.hSet(key, { [uid]: value }), this.#pub.pExpire(key, ttl, 'NX'), this.#pub.pExpire(key, ttl, 'GT')]);
      },
      revocations: async () => {
        const now = Date.now();
        const all = await this.#pub.hGetAll(this.#key.revoked);
        const live: UidRevocation[] = [];
        const expired: string[] = [];
        for (const [uid, text] of Object.entries(all)) {
          const r = parseRevocation(uid, text);
          if (r !== undefined && r.until > now) live.push(r);
          else expired.push(uid);
        }
        if (expired.length > 0) {
          this.#pub.hDel(this.#key.revoked, expired).catch((err: unknown) => {
            this.#log.debug({ err }, 'redis: pruning expired token cut-offs failed');
          });
        }
        return live;
      },
    };
  }
}

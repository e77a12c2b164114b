import { randomUUID } from 'node:crypto';
import type { Logger } from '../../core/types.js';
import { RESOLVED, type Broker } from '../broker.js';
import { clientFor, type RedisLike } from './client.js';
import { RedisInbox } from './inbox.js';
import { redisKeys, type RedisKeys } from './keys.js';
import { RedisMembership } from './membership.js';
import { RedisPresence } from './presence.js';
import { RedisRevocations } from './revocations.js';

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
   * Namespace of every key and channel, so several clusters can share one Redis. No `{`
   * or `}`: Redis Cluster picks a key's slot by its first braces, and a uid's inbox keys
   * and channel must keep the uid's.
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

/**
 * The Redis broker (`--redis redis://...`): sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7)
 * on per-uid and per-group channels that a node subscribes to only while it holds that uid
 * or a member, so a targeted push reaches only the nodes that hold the uid; one channel
 * for broadcast. Each uid's inbox is a stream and three hashes in its channel's slot
 * (inbox.ts). Presence is a hash per node whose lifetime the node keeps refreshing:
 * when a node dies, its uids read offline within `presenceTtl`. Group membership lives in
 * Redis sets, so every node answers the same.
 *
 * When Redis goes away, publishes fail (the caller logs them and still delivers locally),
 * `isReady()` is false, and the client reconnects with backoff; on reconnect the node
 * resubscribes and writes its presence again. A Redis that stays connected but stops
 * answering makes `isReady()` false within `timeout` (a probe every second).
 */
export function createRedisBroker(url: string, log: Logger, options: RedisBrokerOptions = {}): Broker {
  if (options.namespace !== undefined && /[{}]/.test(options.namespace)) {
    throw new Error(`redis namespace ${JSON.stringify(options.namespace)} must not contain '{' or '}' (a Redis Cluster hash tag)`);
  }
  return new RedisBroker(url, log, options);
}

class RedisBroker implements Broker {
  readonly nodeId: string;
  readonly peers = true;
  readonly presence: RedisPresence;
  readonly membership: RedisMembership;
  readonly revocations: RedisRevocations;
  readonly inbox: RedisInbox;
  readonly #log: Logger;
  readonly #ttl: number;
  readonly #key: RedisKeys;
  readonly #pub: RedisLike;
  readonly #sub: RedisLike;
  /**
   * Channels this node wants, each with its subscription (settled once Redis answered the
   * SSUBSCRIBE); resubscribed after a reconnect.
   */
  readonly #channels = new Map<string, Promise<void>>();
  /** Subscriptions asked for before start, made by it. */
  readonly #early = new Map<string, { resolve: () => void; reject: (err: unknown) => void }>();
  /** Whether an outage was logged and no heartbeat has succeeded since. */
  #outage = false;
  #timer: NodeJS.Timeout | undefined;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  #closed = false;
  #wasDown = false;
  readonly #timeout: number;
  #probeTimer: NodeJS.Timeout | undefined;
  /** When the probe that Redis has not answered yet was sent. */
  #probeSentAt: number | undefined;

  constructor(url: string, log: Logger, options: RedisBrokerOptions) {
    this.nodeId = options.nodeId ?? randomUUID();
    this.#log = log;
    this.#ttl = options.presenceTtl ?? 15_000;
    this.#timeout = options.timeout ?? 2000;
    this.#key = redisKeys(options.namespace ?? 'uidpush');
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
        if (name === 'publisher') void this.#recover();
      });
    }
    const markDown = (err: unknown, source: string): void => {
      this.#markDown(err, source);
    };
    this.presence = new RedisPresence(this.#pub, this.#key, this.nodeId, this.#ttl, markDown);
    this.membership = new RedisMembership(this.#pub, this.#key);
    this.revocations = new RedisRevocations(this.#pub, this.#key, log);
    this.inbox = new RedisInbox(this.#pub, this.#key);
  }

  /** Resolves once connected and this node is announced: the other nodes' reads count it. */
  async start(onMessage: (channel: string, message: string) => void): Promise<void> {
    this.#onMessage = onMessage;
    await Promise.all([this.#pub.connect(), this.#sub.connect()]);
    await this.inbox.load();
    for (const [name, early] of this.#early) this.#ssubscribe(name).then(early.resolve, early.reject);
    this.#early.clear();
    this.#timer = setInterval(
      () => {
        void this.#heartbeat();
      },
      Math.max(100, Math.floor(this.#ttl / 3)),
    );
    this.#timer.unref();
    this.#probeTimer = setInterval(
      () => {
        this.#probe();
      },
      Math.max(50, Math.min(1000, Math.floor(this.#timeout / 2))),
    );
    this.#probeTimer.unref();
    await this.#heartbeat();
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#pub.sPublish(this.#key.channel(channel), message);
  }

  /** Resolves on Redis's SSUBSCRIBE reply (from the shard's master in a Redis Cluster). */
  subscribe(channel: string): Promise<void> {
    const known = this.#channels.get(channel);
    if (known !== undefined) return known;
    let made: Promise<void>;
    if (this.#closed) {
      const refused = Promise.reject(new Error('the broker is closed'));
      refused.catch(() => undefined);
      return refused;
    }
    if (this.#sub.isOpen) {
      made = this.#ssubscribe(channel);
    } else {
      made = new Promise<void>((resolve, reject) => {
        this.#early.set(channel, { resolve, reject });
      });
    }
    made.catch(() => undefined);
    this.#channels.set(channel, made);
    return made;
  }

  unsubscribe(channel: string): void {
    if (!this.#channels.delete(channel)) return;
    const early = this.#early.get(channel);
    if (early !== undefined) {
      this.#early.delete(channel);
      early.reject(new Error(`unsubscribed from ${channel} before the broker started`));
      return;
    }
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
    for (const early of this.#early.values()) early.reject(new Error('closed'));
    this.#early.clear();
    try {
      if (this.isReady()) {
        // A clean leave: no need to wait for the presence to expire.
        const leave = this.presence.leave();
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

  #ssubscribe(channel: string): Promise<void> {
    return this.#sub
      .sSubscribe(this.#key.channel(channel), (message: string) => {
        this.#onMessage?.(channel, message);
      })
      .then(
        () => RESOLVED,
        (err: unknown) => {
          this.#log.warn({ err, channel }, 'redis: subscribe failed');
          throw err;
        },
      );
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
  #recover(): Promise<void> {
    if (!this.#wasDown || !this.#pub.isReady) return RESOLVED;
    this.#log.debug({}, 'redis: rewriting presence');
    this.#wasDown = false;
    this.presence.rewrite();
    // A restarted Redis lost its scripts; appends meanwhile take the NOSCRIPT path.
    this.inbox.load().catch((err: unknown) => {
      this.#log.warn({ err }, 'redis: cannot load the inbox scripts');
    });
    return this.#heartbeat();
  }

  /** Keeps this node (and its presence) alive in Redis for another `presenceTtl`; never rejects. */
  #heartbeat(): Promise<void> {
    // Clients that do not say 'ready' after a reconnect (cluster, sentinel) recover here.
    if (this.#wasDown) return this.#recover();
    if (!this.#pub.isReady) return RESOLVED;
    return this.presence.keepAlive().then(
      (intact) => {
        if (this.#outage) {
          this.#outage = false;
          this.#log.info({}, 'redis: back');
        }
        // Presence that should be there and is not was lost without a disconnect (a
        // failover that dropped unreplicated writes, a flushed Redis): write it again.
        if (!intact) {
          this.#log.warn({}, "redis: this node's presence is missing; rewriting it");
          this.presence.rewrite();
        }
      },
      (err: unknown) => {
        // A Redis Cluster reports a failing node as 'node-error', not 'error': a failed
        // heartbeat is how this node learns of it.
        this.#markDown(err, 'heartbeat');
      },
    );
  }
}

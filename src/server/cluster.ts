import { boundedStores, Deadlines, InFlight } from '../broker/bounds.js';
import { channel, decodeEnvelope, encodeEnvelope, encodePushes, type Envelope } from '../broker/envelope.js';
import type { Broker, BrokerStores } from '../broker/broker.js';
import type { TokenCutoffs } from '../auth/cutoffs.js';
import { uidOfCursor } from '../core/uid-order.js';
import { joined, type GroupLimits } from '../core/limits.js';
import { UnavailableError } from '../core/errors.js';
import type { BroadcastResult, BrokerStats, GroupInfo, PushResult, MaybePromise, TokenRevocation, UidPage } from '../core/service.js';
import type { Data, Group, JsonValue, Logger, Uid } from '../core/types.js';
import type { Hub } from '../delivery/hub.js';
import type { Router } from '../delivery/router.js';
import type { HubConnection } from '../transport/connection-info.js';

/** What a node lets wait for its broker. */
export interface ClusterBounds {
  /**
   * Ms a store call or a publish may wait for the broker; also how old a push may be when
   * another node receives it, and how long the oldest publish may stay unanswered before
   * new ones are refused.
   */
  timeout: number;
  /** Bytes of publishes that may wait for the broker at once; more are refused. */
  maxPendingBytes: number;
}

/** Log lines about the same trouble at most this often. */
const NOTICE_QUIET_MS = 1000;

/**
 * How often a node rereads every token cut-off from the store: a node that missed a
 * `revoke` broadcast (it was cut off from the broker then) learns it within this time.
 */
export const CUTOFF_RELOAD_MS = 10_000;

/**
 * One node of a cluster: the local hub plus a broker. Every operation publishes to the
 * other nodes first, then delivers locally whatever the publish did, so local clients are
 * served even while the broker is down. The node subscribes to a uid's channel while the
 * uid has a connection here, and to a group's channel while one of its members does, so a
 * targeted push only reaches the nodes that need it.
 *
 * What waits for the broker is bounded (docs/operations.md, "During a Redis outage"): every
 * store call answers within `timeout` or fails with an {@link UnavailableError}; publishes
 * in flight are capped in bytes and age, and past either a push is not published (it is
 * still delivered locally); each push carries an expiry, and one received after it is
 * dropped, never delivered late. A push that reached no one because the broker could not
 * take it fails with an UnavailableError (safe to retry); one delivered here but not
 * published answers this node's counts with `degraded: true` (a retry would deliver twice).
 */
export class ClusterNode implements Router {
  readonly #hub: Hub<HubConnection>;
  readonly #broker: Broker;
  readonly #store: BrokerStores;
  readonly #log: Logger;
  readonly #timeout: number;
  readonly #deadlines: Deadlines;
  readonly #inFlight: InFlight;
  /** Uids with a connection here (their channel is subscribed). */
  readonly #localUids = new Set<Uid>();
  /** Local members per group (the group's channel is subscribed while > 0). */
  readonly #localMembers = new Map<Group, number>();
  /** The token cut-offs the verifier reads on every login: kept here, fed by the store and broadcasts. */
  readonly #cutoffs: TokenCutoffs;
  #reload: NodeJS.Timeout | undefined;
  readonly #stats = { refusedPushes: 0, stalePushes: 0, degradedPushes: 0 };
  #offlineDrops = 0;
  /** Uids pushed to this turn without a connection here, and how often: checked in the store in one read. */
  #offlineCheck = new Map<Uid, number>();
  /** When each kind of trouble was last logged, and how often it happened since. */
  readonly #notices = new Map<string, { at: number; count: number }>();

  readonly #limits: GroupLimits;

  /** @param limits - caps on joins, enforced by the broker's store for the whole cluster. */
  constructor(hub: Hub<HubConnection>, broker: Broker, log: Logger, cutoffs: TokenCutoffs, limits: GroupLimits, bounds: ClusterBounds) {
    this.#hub = hub;
    this.#broker = broker;
    this.#log = log;
    this.#cutoffs = cutoffs;
    this.#limits = limits;
    this.#timeout = bounds.timeout;
    this.#deadlines = new Deadlines(bounds.timeout);
    this.#inFlight = new InFlight(bounds.maxPendingBytes, bounds.timeout);
    this.#store = boundedStores(broker, this.#deadlines);
  }

  /** What waits for the broker now, and what its bounds refused or dropped so far. */
  get stats(): BrokerStats {
    return {
      pendingBytes: this.#inFlight.bytes,
      pendingPublishes: this.#inFlight.count,
      oldestPendingMs: this.#inFlight.oldestAge(),
      ...this.#stats,
    };
  }

  /**
   * Pushes taken by this node to a uid that no node held: the store said it had no
   * connection, and none was here. A push this node only received from another is never
   * counted, so the cluster counts each offline push once.
   */
  get offlineDrops(): number {
    return this.#offlineDrops;
  }

  get nodeId(): string {
    return this.#broker.nodeId;
  }

  async start(): Promise<void> {
    this.#subscribe(channel.all);
    await this.#broker.start((_channel, message) => {
      this.#onMessage(message);
    });
    // Before the first login is taken: a token revoked before this node started is refused.
    await this.#loadCutoffs();
    this.#reload = setInterval(() => {
      this.#loadCutoffs().catch((err: unknown) => {
        this.#log.warn({ err }, 'cluster: cannot reload token cut-offs');
      });
    }, CUTOFF_RELOAD_MS);
    this.#reload.unref();
  }

  async #loadCutoffs(): Promise<void> {
    this.#cutoffs.prune();
    for (const { uid, before, until } of await this.#store.revocations.revocations()) this.#cutoffs.add(uid, { before, until });
  }

  /** The broker answers, and nothing has waited for it longer than the timeout. */
  isReady(): boolean {
    return this.#broker.isReady() && this.#inFlight.oldestAge() <= this.#timeout;
  }

  close(): Promise<void> {
    clearInterval(this.#reload);
    this.#deadlines.close();
    return this.#broker.close();
  }

  /** The registry's hook: a uid's connection count here changed. */
  onCount(uid: Uid, connections: number): void {
    void this.#store.presence.setLocal(uid, connections);
    if (connections > 0 && !this.#localUids.has(uid)) {
      this.#localUids.add(uid);
      this.#subscribe(channel.uid(uid));
      // Membership lives in the store; take this uid's groups for local delivery.
      this.#store.membership.groupsOf(uid).then(
        (groups) => {
          if (!this.#localUids.has(uid)) return;
          for (const group of groups) this.#joinLocal(group, uid);
        },
        (err: unknown) => {
          this.#log.warn({ err, uid }, 'cluster: cannot read the groups of a uid');
        },
      );
    } else if (connections === 0 && this.#localUids.delete(uid)) {
      this.#broker.unsubscribe(channel.uid(uid));
      for (const group of this.#hub.groupsOf(uid)) this.#leaveLocal(group, uid);
    }
  }

  // Router: client pushes.

  sendToUid(uid: Uid, data: Data, from: Uid | null, wholeCluster: boolean): MaybePromise<PushResult> {
    return this.pushToUids([uid], data, from, wholeCluster);
  }

  /** Publishes to each uid's channel, delivers locally, and answers from the store. */
  pushToUids(uids: readonly Uid[], data: Data, from: Uid | null = null, wholeCluster = true): MaybePromise<PushResult> {
    const unique = [...new Set(uids)];
    const envelopes = encodePushes(this.#broker.nodeId, unique, toJson(data), from, this.#expiry());
    let bytes = 0;
    for (const [, envelope] of envelopes) bytes += envelope.length;
    const sent = this.#admits(bytes) ? envelopes.map(([uid, envelope]) => this.#send(channel.uid(uid), envelope)) : undefined;
    // Before delivering: a slow consumer closed on the way would look absent after.
    const absent = unique.filter((uid) => !this.#hub.isOnline(uid));
    const local = this.#hub.sendToUids(unique, data, from);
    // Not published: whether another node held an absent uid is unknown, so no offline count.
    if (sent === undefined) return this.#unsent(local, local.connections);
    if (!wholeCluster) {
      this.#checkOffline(absent);
      return local;
    }
    const counts = this.#store.presence.connections(unique).then((counts) => {
      if (absent.length > 0) this.#countOffline(unique, counts, new Set(absent));
      return { online: counts.filter((n) => n > 0).length, connections: counts.reduce((a, n) => a + n, 0) };
    });
    return this.#answer(sent, counts, local, local.connections);
  }

  /** Counts the uids of `uids` that had no connection here (`absent`) nor in the store. */
  #countOffline(uids: readonly Uid[], counts: readonly number[], absent: ReadonlySet<Uid>, times?: ReadonlyMap<Uid, number>): void {
    uids.forEach((uid, i) => {
      if (counts[i] === 0 && absent.has(uid)) this.#offlineDrops += times?.get(uid) ?? 1;
    });
  }

  /**
   * A push that asked for no cluster-wide answer (the seed protocol): its absent uids are
   * read from the store in one call per event-loop turn, so a burst costs one read. If the
   * read fails, nothing is counted: whether another node held the uid is unknown.
   */
  #checkOffline(absent: readonly Uid[]): void {
    if (absent.length === 0) return;
    const first = this.#offlineCheck.size === 0;
    for (const uid of absent) this.#offlineCheck.set(uid, (this.#offlineCheck.get(uid) ?? 0) + 1);
    if (!first) return;
    setImmediate(() => {
      const times = this.#offlineCheck;
      this.#offlineCheck = new Map();
      const uids = [...times.keys()];
      this.#store.presence.connections(uids).then(
        (counts) => {
          this.#countOffline(uids, counts, new Set(uids), times);
        },
        (err: unknown) => {
          this.#notice('offline check', 'cluster: cannot read presence to count offline pushes', { err });
        },
      );
    });
  }

  broadcast(data: Data, from: Uid | null = null, wholeCluster = true): MaybePromise<BroadcastResult> {
    const envelope = encodeEnvelope(this.#broker.nodeId, { t: 'broadcast', data: toJson(data), from, exp: this.#expiry() });
    const sent = this.#admits(envelope.length) ? this.#send(channel.all, envelope) : undefined;
    const local = { connections: this.#hub.broadcast(data, from) };
    if (sent === undefined) return this.#unsent(local, local.connections);
    if (!wholeCluster) return local;
    const total = this.#store.presence.connectionTotal().then((connections) => ({ connections }));
    return this.#answer([sent], total, local, local.connections);
  }

  publish(group: Group, data: Data, from: Uid | null = null, wholeCluster = true): MaybePromise<PushResult> {
    const envelope = encodeEnvelope(this.#broker.nodeId, { t: 'publish', group, data: toJson(data), from, exp: this.#expiry() });
    const sent = this.#admits(envelope.length) ? this.#send(channel.group(group), envelope) : undefined;
    const local = this.#hub.publish(group, data, from);
    if (sent === undefined) return this.#unsent(local, local.connections);
    if (!wholeCluster) return local;
    const info = this.groupInfo(group).then((info) => ({ online: info.online, connections: info.connections }));
    return this.#answer([sent], info, local, local.connections);
  }

  /** @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when a cap refused the join. */
  async join(group: Group, uid: Uid): Promise<boolean> {
    const added = joined(await this.#store.membership.addMember(group, uid, this.#limits), group, uid, this.#limits);
    this.#publish(channel.uid(uid), { t: 'join', group, uid });
    if (this.#localUids.has(uid)) this.#joinLocal(group, uid);
    return added;
  }

  async leave(group: Group, uid: Uid): Promise<boolean> {
    const removed = await this.#store.membership.removeMember(group, uid);
    this.#publish(channel.uid(uid), { t: 'leave', group, uid });
    this.#leaveLocal(group, uid);
    return removed;
  }

  /** Removes `uid` from every group it belongs to, cluster-wide; returns how many. */
  async leaveAll(uid: Uid): Promise<number> {
    const groups = await this.#broker.membership.groupsOf(uid);
    const left = await Promise.all(groups.map((group) => this.leave(group, uid)));
    return left.filter(Boolean).length;
  }

  // The rest of the PushService, answered from the store.

  async kick(uid: Uid, reason: string): Promise<number> {
    const [connections = 0] = await this.#store.presence.connections([uid]);
    this.#publish(channel.uid(uid), { t: 'kick', uid, reason });
    this.#hub.kick(uid, reason);
    return connections;
  }

  /**
   * Records the cut-off in the store (so nodes that start later load it), here, and on
   * every node through the broadcast channel (a node holding no connection of `uid` must
   * know it too: the kicked client may reconnect anywhere).
   */
  async revokeTokens(uid: Uid, revocation: TokenRevocation): Promise<void> {
    await this.#store.revocations.revoke({ uid, ...revocation });
    this.#cutoffs.add(uid, revocation);
    this.#publish(channel.all, { t: 'revoke', uid, before: revocation.before, until: revocation.until });
  }

  async connectionsOf(uid: Uid): Promise<number> {
    const [connections = 0] = await this.#store.presence.connections([uid]);
    return connections;
  }

  /** @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a malformed cursor. */
  async listUids(cursor: string | null, limit: number): Promise<UidPage> {
    // Checked here, before any broker: an error thrown in the primary of --workers
    // crosses IPC as text and would reach the API as a 500.
    if (cursor !== null) uidOfCursor(cursor);
    return await this.#store.presence.listUids(cursor, limit);
  }

  totals(): Promise<{ onlineUids: number; connections: number }> {
    return this.#store.presence.totals();
  }

  /** Two reads in a row, under one deadline: the answer comes within the timeout. */
  groupInfo(group: Group): Promise<GroupInfo> {
    return this.#deadlines.race(() => this.#groupInfo(group), 'group read');
  }

  async #groupInfo(group: Group): Promise<GroupInfo> {
    const members = await this.#store.membership.members(group);
    const counts = members.length === 0 ? [] : await this.#store.presence.connections(members);
    return {
      group,
      members: members.length,
      online: counts.filter((n) => n > 0).length,
      connections: counts.reduce((a, n) => a + n, 0),
    };
  }

  /** Control messages (kick, join, leave): small, and never refused. */
  #publish(name: string, env: Envelope): void {
    // #send logs a failure; a control message has no caller waiting for it.
    void this.#send(name, encodeEnvelope(this.#broker.nodeId, env));
  }

  /** Publishes, counted in flight until the broker answers; a failure is logged here. */
  #send(name: string, message: string): Promise<void> {
    const sent = this.#inFlight.track(message.length, this.#broker.publish(name, message));
    sent.catch((err: unknown) => {
      // Local delivery goes on; the other nodes miss this one (at-most-once).
      this.#notice('publish failed', 'cluster: publish failed', { err, channel: name });
    });
    return sent;
  }

  /** When a push published now stops being worth delivering (see Envelope's `exp`). */
  #expiry(): number {
    return Date.now() + this.#timeout;
  }

  /** Whether a push of `bytes` may be published: the broker is up and its bounds allow. */
  #admits(bytes: number): boolean {
    if (this.#broker.isReady() && this.#inFlight.admits(bytes)) return true;
    this.#stats.refusedPushes++;
    this.#notice('refused', 'cluster: broker unavailable or over its bounds; pushes reach this node\'s clients only', {
      pendingBytes: this.#inFlight.bytes,
      oldestMs: this.#inFlight.oldestAge(),
    });
    return false;
  }

  /** The answer to a push the broker did not take: what was delivered here, or a refusal. */
  #unsent<T extends object>(local: T, delivered: number): MaybePromise<T & { degraded?: true }> {
    if (delivered > 0) {
      this.#stats.degradedPushes++;
      return { ...local, degraded: true };
    }
    return Promise.reject(new UnavailableError('the broker is unavailable; nothing was delivered'));
  }

  /**
   * The whole cluster's answer once every publish and the store read succeed (each within
   * the timeout); otherwise this node's own answer marked degraded, or a refusal when
   * nothing was delivered here.
   */
  #answer<T extends object>(sent: Promise<void>[], read: Promise<T>, local: T, delivered: number): Promise<T & { degraded?: true }> {
    const published = this.#deadlines.race(() => Promise.all(sent), 'publish');
    return Promise.all([published, read]).then(
      ([, whole]) => whole,
      (err: unknown) => {
        if (delivered === 0) throw err;
        this.#stats.degradedPushes++;
        return { ...local, degraded: true as const };
      },
    );
  }

  /** Logs trouble that repeats (every push during an outage) at most once a second. */
  #notice(kind: string, msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const last = this.#notices.get(kind);
    if (last !== undefined && now - last.at < NOTICE_QUIET_MS) {
      last.count++;
      return;
    }
    this.#notices.set(kind, { at: now, count: 0 });
    this.#log.warn({ ...fields, since: last?.count ?? 0 }, msg);
  }

  /** Whether a received push has expired: it waited in the broker past the sender's timeout. */
  #stale(exp: number | undefined): boolean {
    if (exp === undefined || Date.now() <= exp) return false;
    this.#stats.stalePushes++;
    this.#notice('stale', 'cluster: dropped pushes older than the broker timeout (a stalled broker, or node clocks apart)', {
      lateMs: Date.now() - exp,
    });
    return true;
  }

  #onMessage(text: string): void {
    const decoded = decodeEnvelope(text);
    if (!decoded.ok) {
      this.#log.warn({ reason: decoded.reason }, 'cluster: ignoring a message');
      return;
    }
    if (decoded.node === this.#broker.nodeId) return;
    const env = decoded.env;
    switch (env.t) {
      case 'push':
        if (!this.#stale(env.exp)) this.#hub.sendToUid(env.uid, env.data, env.from);
        return;
      case 'publish':
        if (!this.#stale(env.exp)) this.#hub.publish(env.group, env.data, env.from);
        return;
      case 'broadcast':
        if (!this.#stale(env.exp)) this.#hub.broadcast(env.data, env.from);
        return;
      case 'kick':
        this.#hub.kick(env.uid, env.reason);
        return;
      case 'revoke':
        this.#cutoffs.add(env.uid, { before: env.before, until: env.until });
        return;
      case 'join':
        if (this.#localUids.has(env.uid)) this.#joinLocal(env.group, env.uid);
        return;
      case 'leave':
        this.#leaveLocal(env.group, env.uid);
        return;
    }
  }

  /** Subscribes; a failure is the broker's to log, the interest stays recorded. */
  #subscribe(name: string): void {
    this.#broker.subscribe(name).catch((err: unknown) => {
      this.#log.debug({ err, channel: name }, 'cluster: subscribe failed');
    });
  }

  #joinLocal(group: Group, uid: Uid): void {
    if (!this.#hub.join(group, uid)) return;
    const n = (this.#localMembers.get(group) ?? 0) + 1;
    this.#localMembers.set(group, n);
    if (n === 1) this.#subscribe(channel.group(group));
  }

  #leaveLocal(group: Group, uid: Uid): void {
    if (!this.#hub.leave(group, uid)) return;
    const n = (this.#localMembers.get(group) ?? 1) - 1;
    if (n > 0) {
      this.#localMembers.set(group, n);
      return;
    }
    this.#localMembers.delete(group);
    this.#broker.unsubscribe(channel.group(group));
  }
}

/** Data as it crosses the wire: text stays text, UTF-8 bytes (a Buffer...) become their string. */
function toJson(data: Data): JsonValue {
  if (!(data instanceof Uint8Array)) return data;
  return (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('utf8');
}

import { channel, decodeEnvelope, encodeEnvelope, encodePushes, type Envelope } from '../broker/envelope.js';
import type { Broker } from '../broker/broker.js';
import type { TokenCutoffs } from '../auth/cutoffs.js';
import { uidOfCursor } from '../broker/uid-order.js';
import { joined, type GroupLimits } from '../core/limits.js';
import type { GroupInfo, PushResult, Sync, TokenRevocation, UidPage } from '../core/service.js';
import type { Data, Group, JsonValue, Logger, Uid } from '../core/types.js';
import type { Hub } from '../delivery/hub.js';
import type { Router } from '../delivery/router.js';
import type { Connection } from '../transport/connection.js';

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
 */
export class ClusterNode implements Router {
  readonly #hub: Hub<Connection>;
  readonly #broker: Broker;
  readonly #log: Logger;
  /** Uids with a connection here (their channel is subscribed). */
  readonly #localUids = new Set<Uid>();
  /** Local members per group (the group's channel is subscribed while > 0). */
  readonly #localMembers = new Map<Group, number>();
  /** The token cut-offs the verifier reads on every login: kept here, fed by the store and broadcasts. */
  readonly #cutoffs: TokenCutoffs;
  #reload: NodeJS.Timeout | undefined;

  readonly #limits: GroupLimits;

  /** @param limits - caps on joins, enforced by the broker's store for the whole cluster. */
  constructor(hub: Hub<Connection>, broker: Broker, log: Logger, cutoffs: TokenCutoffs, limits: GroupLimits) {
    this.#hub = hub;
    this.#broker = broker;
    this.#log = log;
    this.#cutoffs = cutoffs;
    this.#limits = limits;
  }

  get nodeId(): string {
    return this.#broker.nodeId;
  }

  async start(): Promise<void> {
    this.#broker.subscribe(channel.all);
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
    for (const { uid, before, until } of await this.#broker.store.revocations()) this.#cutoffs.add(uid, { before, until });
  }

  isReady(): boolean {
    return this.#broker.isReady();
  }

  close(): Promise<void> {
    clearInterval(this.#reload);
    return this.#broker.close();
  }

  /** The registry's hook: a uid's connection count here changed. */
  onCount(uid: Uid, connections: number): void {
    this.#broker.store.setLocal(uid, connections);
    if (connections > 0 && !this.#localUids.has(uid)) {
      this.#localUids.add(uid);
      this.#broker.subscribe(channel.uid(uid));
      // Membership lives in the store; take this uid's groups for local delivery.
      this.#broker.store.groupsOf(uid).then(
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

  sendToUid(uid: Uid, data: Data, from: Uid | null, wholeCluster: boolean): Sync<PushResult> {
    return this.pushToUids([uid], data, from, wholeCluster);
  }

  /** Publishes to each uid's channel, delivers locally, and answers from the store. */
  pushToUids(uids: readonly Uid[], data: Data, from: Uid | null = null, wholeCluster = true): Sync<PushResult> {
    const unique = [...new Set(uids)];
    for (const [uid, envelope] of encodePushes(this.#broker.nodeId, unique, toJson(data), from)) {
      this.#send(channel.uid(uid), envelope);
    }
    const local = this.#hub.sendToUids(unique, data, from);
    if (!wholeCluster) return local;
    return this.#broker.store.connections(unique).then((counts) => ({
      online: counts.filter((n) => n > 0).length,
      connections: counts.reduce((a, n) => a + n, 0),
    }));
  }

  broadcast(data: Data, from: Uid | null = null, wholeCluster = true): Sync<number> {
    this.#publish(channel.all, { t: 'broadcast', data: toJson(data), from });
    const local = this.#hub.broadcast(data, from);
    if (!wholeCluster) return local;
    return this.#broker.store.connectionTotal();
  }

  publish(group: Group, data: Data, from: Uid | null = null, wholeCluster = true): Sync<PushResult> {
    this.#publish(channel.group(group), { t: 'publish', group, data: toJson(data), from });
    const local = this.#hub.publish(group, data, from);
    if (!wholeCluster) return local;
    return this.groupInfo(group).then((info) => ({ online: info.online, connections: info.connections }));
  }

  /** @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when a cap refused the join. */
  async join(group: Group, uid: Uid): Promise<boolean> {
    const added = joined(await this.#broker.store.addMember(group, uid, this.#limits), group, uid, this.#limits);
    this.#publish(channel.uid(uid), { t: 'join', group, uid });
    if (this.#localUids.has(uid)) this.#joinLocal(group, uid);
    return added;
  }

  async leave(group: Group, uid: Uid): Promise<boolean> {
    const removed = await this.#broker.store.removeMember(group, uid);
    this.#publish(channel.uid(uid), { t: 'leave', group, uid });
    this.#leaveLocal(group, uid);
    return removed;
  }

  /** Removes `uid` from every group it belongs to, cluster-wide; returns how many. */
  async leaveAll(uid: Uid): Promise<number> {
    const groups = await this.#broker.store.groupsOf(uid);
    const left = await Promise.all(groups.map((group) => this.leave(group, uid)));
    return left.filter(Boolean).length;
  }

  // The rest of the PushService, answered from the store.

  async kick(uid: Uid, reason: string): Promise<number> {
    const [connections = 0] = await this.#broker.store.connections([uid]);
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
    await this.#broker.store.revoke({ uid, ...revocation });
    this.#cutoffs.add(uid, revocation);
    this.#publish(channel.all, { t: 'revoke', uid, before: revocation.before, until: revocation.until });
  }

  async connectionsOf(uid: Uid): Promise<number> {
    const [connections = 0] = await this.#broker.store.connections([uid]);
    return connections;
  }

  /** @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a malformed cursor. */
  async listUids(cursor: string | null, limit: number): Promise<UidPage> {
    // Checked here, before any broker: an error thrown in the primary of --workers
    // crosses IPC as text and would reach the API as a 500.
    if (cursor !== null) uidOfCursor(cursor);
    return await this.#broker.store.listUids(cursor, limit);
  }

  totals(): Promise<{ onlineUids: number; connections: number }> {
    return this.#broker.store.totals();
  }

  async groupInfo(group: Group): Promise<GroupInfo> {
    const members = await this.#broker.store.members(group);
    const counts = members.length === 0 ? [] : await this.#broker.store.connections(members);
    return {
      group,
      members: members.length,
      online: counts.filter((n) => n > 0).length,
      connections: counts.reduce((a, n) => a + n, 0),
    };
  }

  #publish(name: string, env: Envelope): void {
    this.#send(name, encodeEnvelope(this.#broker.nodeId, env));
  }

  #send(name: string, message: string): void {
    this.#broker.publish(name, message).catch((err: unknown) => {
      // Local delivery goes on; the other nodes miss this one (at-most-once).
      this.#log.warn({ err, channel: name }, 'cluster: publish failed');
    });
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
        this.#hub.sendToUid(env.uid, env.data, env.from);
        return;
      case 'publish':
        this.#hub.publish(env.group, env.data, env.from);
        return;
      case 'broadcast':
        this.#hub.broadcast(env.data, env.from);
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

  #joinLocal(group: Group, uid: Uid): void {
    if (!this.#hub.join(group, uid)) return;
    const n = (this.#localMembers.get(group) ?? 0) + 1;
    this.#localMembers.set(group, n);
    if (n === 1) this.#broker.subscribe(channel.group(group));
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

/** Data as it crosses the wire: text stays text, a Buffer becomes its UTF-8 string. */
function toJson(data: Data): JsonValue {
  return Buffer.isBuffer(data) ? data.toString('utf8') : data;
}

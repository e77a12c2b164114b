import type { TokenCutoffs } from '../auth/cutoffs.js';
import { Deadlines, InFlight } from '../broker/bounds.js';
import type { Broker, RetainedEnvelope } from '../broker/broker.js';
import { channel, decodeEnvelope, encodeEnvelope, encodePushes, encodeRetainedPush, type Envelope } from '../broker/envelope.js';
import {
  checkInboxKey,
  isRetained,
  MAX_AWAIT_ACKS,
  MAX_AWAIT_MS,
  type AckOutcome,
  type Appended,
  type DeliveryClass,
  type InboxInfo,
  type InboxRefusal,
  type InboxWelcome,
  type ResumeRequest,
  type Retention,
} from '../core/inbox.js';
import { uidOfCursor } from '../core/uid-order.js';
import { ProgramErrorCode, UidpushError, UnavailableError } from '../core/errors.js';
import { joined, type GroupLimits } from '../core/limits.js';
import type {
  BroadcastResult,
  BrokerStats,
  GroupInfo,
  MaybePromise,
  PushOptions,
  PushResult,
  SessionNode,
  UidPosition,
  TokenRevocation,
  UidPage,
} from '../core/service.js';
import type { Data, Group, JsonValue, Logger, Uid } from '../core/types.js';
import type { Hub, Recipient } from '../delivery/hub.js';
import { dataJson } from '../delivery/push-frames.js';
import type { Registry } from '../registry/registry.js';
import { Recovery } from './recovery.js';

/** What a node lets wait for its broker. */
export interface NodeBounds {
  /**
   * Ms a store call or a publish may wait for the broker; also how old a push may be when
   * another node receives it, how long the oldest publish may stay unanswered before new
   * ones are refused, and how long a login reply or a join waits for subscriptions.
   */
  timeout: number;
  /** Bytes of publishes that may wait for the broker at once; more are refused. */
  maxPendingBytes: number;
}

/** What a node is made of, besides its registry, hub and broker. */
export interface NodeOptions {
  log: Logger;
  /** The token cut-offs the verifier reads on every login: kept here, fed by the store and broadcasts. */
  cutoffs: TokenCutoffs;
  /** Caps on joins, enforced by the broker's membership store for the whole cluster. */
  limits: GroupLimits;
  bounds: NodeBounds;
  /**
   * Called once this process holds no connection of `uid` and the presence store says so:
   * from then on a presence read on any node counts none of this process's connections.
   */
  onOffline?: (uid: Uid) => void;
  /** The per-user inbox (docs/delivery.md); absent: off, every push at most once. */
  inbox?: NodeInbox | undefined;
}

/** The inbox as a node runs it. */
export interface NodeInbox {
  retention: Retention;
  /** The class of a push that names none. */
  defaultDelivery: DeliveryClass;
  /** The send-buffer cap: a replay waits for the buffer to drain below half of it. */
  maxBufferedBytes: number;
}

/** A push waiting for acks of its uid's devices. */
interface AckWait {
  /** Its offset; until the append answers, every ack is noted in `seen`. */
  offset: number;
  need: number;
  seen: Map<string, number>;
  acked: string[];
  done: () => void;
}

/** Log lines about the same trouble at most this often. */
const NOTICE_QUIET_MS = 1000;

/**
 * How often a node rereads every token cut-off from the store: a node that missed a
 * `revoke` broadcast (it was cut off from the broker then) learns it within this time.
 */
export const CUTOFF_RELOAD_MS = 10_000;

/** Where a push goes: uids, a group's members, or everyone. */
type PushTarget = { kind: 'uids'; uids: readonly Uid[] } | { kind: 'group'; group: Group } | { kind: 'all' };

/** A uid whose first connection here is being made reachable (see {@link Node.attach}). */
interface Preparing {
  ready: Promise<void>;
}

/** A membership change waiting for the nodes that hold the member to subscribe. */
interface Spread {
  waiting: Set<string>;
  done: () => void;
}

const RESOLVED = Promise.resolve();

/**
 * The one node: the local registry and hub plus a broker, always (a `LocalBroker`, with no
 * peers, when the process is alone). Every push from a client, the API or the program
 * passes {@link Node.#push}: published to the other nodes first, then delivered here, so
 * local clients are served even while the broker is down. With no peers nothing is
 * encoded for the broker and every answer is this node's, at once.
 *
 * The node subscribes to a uid's channel while the uid has a connection here, and to a
 * group's channel while one of its members does (the registry's events), so a targeted push
 * only reaches the nodes that need it. Two orderings hold in every topology:
 * - a login reply is sent only once the uid's channel and its groups' channels are
 *   subscribed and its presence recorded, so a push sent through any node after the reply
 *   reaches the connection;
 * - a join returns only once every node holding the member has subscribed to the group's
 *   channel (or `timeout` passed), so a publish after it reaches the member.
 *
 * What waits for the broker is bounded (docs/operations.md, "During a Redis outage"): every
 * store call answers within `timeout` or fails with an {@link UnavailableError}; publishes
 * in flight are capped in bytes and age, and past either a push is not published (it is
 * still delivered locally); each push carries an expiry, and one received after it is
 * dropped, never delivered late. A push that reached no one because the broker could not
 * take it fails with an UnavailableError (safe to retry); one delivered here but not
 * published answers this node's counts with `degraded: true` (a retry would deliver twice).
 */
export class Node<C extends Recipient> implements SessionNode<C> {
  readonly #registry: Registry<C>;
  readonly #hub: Hub<C>;
  readonly #broker: Broker;
  /** Whether other nodes exist: without, nothing is encoded, published or read back. */
  readonly #peers: boolean;
  readonly #log: Logger;
  readonly #timeout: number;
  readonly #deadlines: Deadlines;
  readonly #inFlight: InFlight;
  readonly #cutoffs: TokenCutoffs;
  readonly #limits: GroupLimits;
  readonly #onOffline: ((uid: Uid) => void) | undefined;
  #reload: NodeJS.Timeout | undefined;
  readonly #stats = { refusedPushes: 0, stalePushes: 0, degradedPushes: 0 };
  #offlineDrops = 0;
  /** Uids pushed to this turn without a connection here, and how often: checked in the store in one read. */
  #offlineCheck = new Map<Uid, number>();
  /** When each kind of trouble was last logged, and how often it happened since. */
  readonly #notices = new Map<string, { at: number; count: number }>();
  /** Uids whose first connection here is being made reachable; absent: reachable (if online). */
  readonly #preparing = new Map<Uid, Preparing>();
  /** Subscriptions of the groups with a member here, each settled once it is in effect. */
  readonly #groupSubscriptions = new Map<Group, Promise<void>>();
  /** Joins waiting for other nodes' `joined`, by reference. */
  readonly #spreads = new Map<string, Spread>();
  #nextRef = 0;
  /** The presence write of the latest bind or unbind, which a login reply waits for. */
  #lastWrite: Promise<void> = RESOLVED;
  readonly #inbox: NodeInbox | undefined;
  readonly #recovery: Recovery<C> | undefined;
  /** Pushes waiting for acks, by uid. */
  readonly #awaits = new Map<Uid, Set<AckWait>>();

  constructor(registry: Registry<C>, hub: Hub<C>, broker: Broker, options: NodeOptions) {
    this.#registry = registry;
    this.#hub = hub;
    this.#broker = broker;
    this.#peers = broker.peers;
    this.#log = options.log;
    this.#cutoffs = options.cutoffs;
    this.#limits = options.limits;
    this.#onOffline = options.onOffline;
    this.#timeout = options.bounds.timeout;
    this.#deadlines = new Deadlines(options.bounds.timeout);
    this.#inFlight = new InFlight(options.bounds.maxPendingBytes, options.bounds.timeout);
    this.#inbox = options.inbox;
    if (options.inbox !== undefined) {
      const recovery = new Recovery<C>(
        hub,
        broker.inbox,
        options.inbox.retention,
        (call, what) => this.#boundMaybe(call, what),
        options.log,
        options.inbox.maxBufferedBytes,
        (conn, uid) => this.#registry.uidOf(conn) === uid,
      );
      this.#recovery = recovery;
      hub.onGap = (conn) => {
        recovery.resync(conn);
      };
    }
    registry.listen({
      online: (uid) => {
        this.#online(uid);
      },
      count: (uid, connections) => {
        // The first count is written once the uid's channel is subscribed (#prepare).
        if (connections > 0 && this.#preparing.has(uid)) return;
        this.#lastWrite = this.#setLocal(uid, connections);
      },
      offline: (uid) => {
        this.#preparing.delete(uid);
        this.#unsubscribe(channel.uid(uid));
        this.#recordedOffline(uid);
      },
      groupActive: (group) => {
        this.#groupSubscriptions.set(group, this.#subscribe(channel.group(group)));
      },
      groupIdle: (group) => {
        this.#groupSubscriptions.delete(group);
        this.#unsubscribe(channel.group(group));
      },
    });
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

  /** Whether other nodes may exist (the broker is not the process's own). */
  get clustered(): boolean {
    return this.#peers;
  }

  /**
   * Pushes taken by this node to a uid that no node held. A push this node only received
   * from another is never counted, so the cluster counts each offline push once.
   */
  get offlineDrops(): number {
    return this.#peers ? this.#offlineDrops : this.#hub.stats.offlineDrops;
  }

  get nodeId(): string {
    return this.#broker.nodeId;
  }

  async start(): Promise<void> {
    const subscribed = [this.#subscribe(channel.all), this.#subscribe(channel.node(this.#broker.nodeId))];
    await this.#broker.start((_channel, message) => {
      this.#onMessage(message);
    });
    await Promise.all(subscribed);
    // Before the first login is taken: a token revoked before this node started is refused.
    await this.#loadCutoffs();
    if (!this.#peers) return;
    this.#reload = setInterval(() => {
      this.#loadCutoffs().catch((err: unknown) => {
        this.#log.warn({ err }, 'cluster: cannot reload token cut-offs');
      });
    }, CUTOFF_RELOAD_MS);
    this.#reload.unref();
  }

  async #loadCutoffs(): Promise<void> {
    this.#cutoffs.prune();
    const all = await this.#bound(() => this.#broker.revocations.revocations(), 'token cut-offs read');
    for (const { uid, before, until } of all) this.#cutoffs.add(uid, { before, until });
  }

  /** The broker answers, and nothing has waited for it longer than the timeout. */
  isReady(): boolean {
    return this.#broker.isReady() && this.#inFlight.oldestAge() <= this.#timeout;
  }

  close(): Promise<void> {
    clearInterval(this.#reload);
    this.#deadlines.close();
    for (const spread of this.#spreads.values()) spread.done();
    for (const waits of [...this.#awaits.values()]) for (const wait of [...waits]) wait.done();
    return this.#broker.close();
  }

  // SessionNode: what a client session asks.

  /** Whether pushes may be retained (the inbox is on). */
  get inboxOn(): boolean {
    return this.#inbox !== undefined;
  }

  attach(conn: C, uid: Uid, attached: (conn: C, inbox?: InboxWelcome | InboxRefusal) => void, resume?: ResumeRequest): void {
    const recovery = resume === undefined ? undefined : this.#recovery;
    if (recovery !== undefined && resume !== undefined) {
      recovery.prepare(conn, uid, resume.device);
      const inner = attached;
      attached = (c) => {
        this.#recover(recovery, c, uid, resume, inner);
      };
    }
    this.#lastWrite = RESOLVED;
    this.#registry.bind(conn, uid);
    // A first connection waits for its channels; a later one, in a cluster, for its count
    // to be recorded, so that every node's answer counts it once its client is told.
    const written = this.#lastWrite;
    const wait =
      this.#preparing.get(uid)?.ready ??
      // Bounded: a broker that stalls delays a login reply by the timeout at most.
      (this.#peers ? this.#deadlines.race(() => written, 'presence write').catch(() => undefined) : undefined);
    if (wait === undefined) {
      conn.attached = true;
      attached(conn);
      return;
    }
    void wait.then(() => {
      // Closed, kicked or moved meanwhile: no reply.
      if (this.#registry.uidOf(conn) !== uid) return;
      conn.attached = true;
      try {
        attached(conn);
      } catch (err) {
        // The session guards its own callback; this keeps a miss from ending the process.
        this.#log.error({ err, uid }, 'login reply failed');
      }
    });
  }

  /**
   * The login's recovery, once the connection is attached (its pushes held): opens the
   * device's place in the inbox, answers the login with it, then writes the replay.
   */
  #recover(
    recovery: Recovery<C>,
    conn: C,
    uid: Uid,
    resume: ResumeRequest,
    attached: (conn: C, inbox?: InboxWelcome | InboxRefusal) => void,
  ): void {
    recovery.open(conn, resume.since).then(
      (opened) => {
        if (this.#registry.uidOf(conn) !== uid) return;
        if ('refused' in opened) {
          this.#refuse(conn, attached, { refused: opened.refused, unavailable: false });
          return;
        }
        try {
          attached(conn, opened.welcome);
        } catch (err) {
          this.#log.error({ err, uid }, 'login reply failed');
        }
        void recovery.replay(conn, opened.entries, opened.welcome.offset);
      },
      (err: unknown) => {
        if (this.#registry.uidOf(conn) !== uid) return;
        this.#notice('inbox open', "inbox: cannot open a device's inbox; its login is refused with unavailable", { err, uid });
        this.#refuse(conn, attached, { refused: 'the inbox is unavailable; try again', unavailable: true });
      },
    );
  }

  #refuse(conn: C, attached: (conn: C, inbox?: InboxWelcome | InboxRefusal) => void, refusal: InboxRefusal): void {
    conn.inbox = undefined;
    this.detach(conn);
    try {
      attached(conn, refusal);
    } catch (err) {
      this.#log.error({ err }, 'login refusal failed');
    }
  }

  detach(conn: C): void {
    conn.attached = false;
    this.#registry.unbind(conn);
  }

  /**
   * A device's ack: moves its cursor in the uid's inbox, and tells pushes awaiting acks
   * (here, and through the uid's receipts channel on other nodes). Undefined when the
   * connection has no inbox (a seed connection, or the inbox off).
   */
  ack(conn: C, upTo: number): MaybePromise<AckOutcome> | undefined {
    const box = conn.inbox;
    if (box === undefined || this.#inbox === undefined) return undefined;
    const retention = this.#inbox.retention;
    const { uid, device } = box;
    const outcome = this.#boundMaybe(() => this.#broker.inbox.ack(uid, device, upTo, retention), 'inbox ack');
    const told = (result: AckOutcome): AckOutcome => {
      if (!result.ok) return result;
      this.#receipt(uid, device, upTo);
      if (this.#peers) this.#publish(channel.receipts(uid), { t: 'acked', uid, device, upTo });
      return result;
    };
    return outcome instanceof Promise ? outcome.then(told) : told(outcome);
  }

  /** A uid's inbox: position, retained range, devices. */
  inboxOf(uid: Uid): MaybePromise<InboxInfo> {
    const inbox = this.#inbox;
    if (inbox === undefined) throw new UidpushError(ProgramErrorCode.InvalidArgument, 'the inbox is off (start the server with --inbox)');
    return this.#boundMaybe(() => this.#broker.inbox.info(uid, inbox.retention), 'inbox read');
  }

  /** An ack of `device` up to `upTo`: counted by every push to `uid` waiting for it. */
  #receipt(uid: Uid, device: string, upTo: number): void {
    const waits = this.#awaits.get(uid);
    if (waits === undefined) return;
    for (const wait of waits) {
      wait.seen.set(device, Math.max(wait.seen.get(device) ?? 0, upTo));
      if (upTo >= wait.offset && !wait.acked.includes(device)) wait.acked.push(device);
      if (wait.acked.length >= wait.need) wait.done();
    }
  }

  uidOf(conn: C): Uid | undefined {
    return this.#registry.uidOf(conn);
  }

  sendToUid(uid: Uid, data: Data, from: Uid | null, answer: boolean, delivery?: DeliveryClass): MaybePromise<PushResult> {
    const cls = this.#classOf(delivery);
    if (cls !== undefined) return this.#retainedPush([uid], data, from, answer, cls, {});
    return this.#push({ kind: 'uids', uids: [uid] }, data, from, answer);
  }

  /**
   * Pushes to each uid: published to each uid's channel, delivered here, answered from the
   * store; retained in each uid's inbox when its class says so (docs/delivery.md).
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for options that do not fit.
   */
  pushToUids(
    uids: readonly Uid[],
    data: Data,
    from: Uid | null = null,
    answer = true,
    options: PushOptions = {},
  ): MaybePromise<PushResult> {
    const cls = this.#classOf(options.delivery);
    if (options.idempotencyKey !== undefined) {
      const refusal = checkInboxKey(options.idempotencyKey, 'idempotencyKey');
      if (refusal !== undefined) throw new UidpushError(ProgramErrorCode.InvalidArgument, refusal);
      if (cls === undefined) throw new UidpushError(ProgramErrorCode.InvalidArgument, 'idempotencyKey: only a retained push has one');
    }
    if (options.await !== undefined) {
      const { acked, timeoutMs } = options.await;
      if (cls === undefined) throw new UidpushError(ProgramErrorCode.InvalidArgument, 'await: only a retained push can be acked');
      if (uids.length !== 1) throw new UidpushError(ProgramErrorCode.InvalidArgument, 'await: needs one uid');
      if (!Number.isSafeInteger(acked) || acked < 1 || acked > MAX_AWAIT_ACKS) {
        throw new UidpushError(ProgramErrorCode.InvalidArgument, `await.acked: 1 to ${String(MAX_AWAIT_ACKS)}`);
      }
      if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_AWAIT_MS) {
        throw new UidpushError(ProgramErrorCode.InvalidArgument, `await.timeoutMs: 1 to ${String(MAX_AWAIT_MS)}`);
      }
    }
    if (cls !== undefined) return this.#retainedPush(uids, data, from, answer, cls, options);
    return this.#push({ kind: 'uids', uids }, data, from, answer);
  }

  /**
   * The class a push is retained with, or undefined for one that is not retained.
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a retained class with the inbox off.
   */
  #classOf(delivery: DeliveryClass | undefined): DeliveryClass | undefined {
    const inbox = this.#inbox;
    if (inbox === undefined) {
      if (delivery !== undefined && isRetained(delivery)) {
        throw new UidpushError(
          ProgramErrorCode.InvalidArgument,
          'delivery: the inbox is off (start the server with --inbox); only ephemeral pushes',
        );
      }
      return undefined;
    }
    const cls = delivery ?? inbox.defaultDelivery;
    return isRetained(cls) ? cls : undefined;
  }

  /**
   * A retained push: appended to each uid's inbox, which publishes it with its offset in
   * the same step (so every node, this one included, receives a uid's pushes in offset
   * order and delivers them from the subscription). Alone, delivered here at once. A store
   * that cannot take it refuses the push (`unavailable`): never downgraded to ephemeral.
   */
  #retainedPush(
    uids: readonly Uid[],
    data: Data,
    from: Uid | null,
    answer: boolean,
    cls: DeliveryClass,
    options: PushOptions,
  ): MaybePromise<PushResult> {
    const inbox = this.#inbox as NodeInbox;
    const unique = uids.length === 1 ? uids : [...new Set(uids)];
    const json = dataJson(data);
    const key = cls.kind === 'latest' ? cls.key : undefined;
    const exp = this.#peers ? this.#expiry() : undefined;
    const wait = options.await === undefined ? undefined : this.#startWait(unique[0] as Uid, options.await.acked);
    const appended: MaybePromise<Appended>[] = [];
    for (const uid of unique) {
      let envelope: RetainedEnvelope | undefined;
      if (this.#peers) envelope = { channel: channel.uid(uid), ...encodeRetainedPush(this.#broker.nodeId, uid, json, from, key, exp) };
      const entry = { data: json, from, key, idempotencyKey: options.idempotencyKey };
      appended.push(this.#boundMaybe(() => this.#broker.inbox.append(uid, entry, envelope, inbox.retention), 'inbox append'));
    }
    const finish = (positions: Appended[]): MaybePromise<PushResult> => {
      let online = 0;
      let connections = 0;
      if (!this.#peers) {
        positions.forEach((position, i) => {
          const uid = unique[i] as Uid;
          if (position.duplicate) return;
          const written = this.#hub.sendRetained(uid, data, from, { offset: position.offset, epoch: position.epoch, key }, json);
          if (written > 0) online++;
          connections += written;
        });
      }
      const result: PushResult = { online, connections, ...placeOf(unique, positions) };
      const counted: MaybePromise<PushResult> =
        this.#peers && answer
          ? this.#connections(unique).then(
              (counts) => ({
                ...result,
                online: counts.filter((n) => n > 0).length,
                connections: counts.reduce((a, n) => a + n, 0),
              }),
              // Retained already: a refusal now would make the caller push it again.
              (): PushResult => {
                this.#stats.degradedPushes++;
                return { ...result, degraded: true };
              },
            )
          : result;
      if (wait === undefined) return counted;
      const [position] = positions;
      return Promise.all([counted, wait.until((position as Appended).offset, (options.await as { timeoutMs: number }).timeoutMs)]).then(
        ([r, acked]) => ({ ...r, acked, undelivered: acked.length === 0 }),
      );
    };
    const failed = (err: unknown): never => {
      wait?.cancel();
      throw err instanceof UnavailableError
        ? err
        : new UnavailableError('the inbox store did not take the push; nothing was retained', { cause: err });
    };
    if (appended.every((a) => !(a instanceof Promise)) && wait === undefined) {
      return finish(appended as Appended[]);
    }
    const all = (wait?.ready ?? RESOLVED).then(() => Promise.all(appended.map(async (a) => a)));
    return all.then(finish, failed);
  }

  /**
   * Starts waiting for `need` devices of `uid` to ack a push not yet appended: acks are
   * noted from now (in a cluster, once the uid's receipts channel is subscribed), so none
   * can come before the wait.
   */
  #startWait(
    uid: Uid,
    need: number,
  ): { ready: Promise<void>; until: (offset: number, timeoutMs: number) => Promise<string[]>; cancel: () => void } {
    let waits = this.#awaits.get(uid);
    if (waits === undefined) {
      waits = new Set();
      this.#awaits.set(uid, waits);
    }
    const ready = waits.size === 0 && this.#peers ? this.#subscribe(channel.receipts(uid)) : RESOLVED;
    let settle: (acked: string[]) => void = () => undefined;
    const settled = new Promise<string[]>((resolve) => {
      settle = resolve;
    });
    let timer: NodeJS.Timeout | undefined;
    const wait: AckWait = {
      offset: Number.POSITIVE_INFINITY,
      need,
      seen: new Map(),
      acked: [],
      done: () => {
        clearTimeout(timer);
        const set = this.#awaits.get(uid);
        if (set?.delete(wait) === true && set.size === 0) {
          this.#awaits.delete(uid);
          if (this.#peers) this.#unsubscribe(channel.receipts(uid));
        }
        settle([...wait.acked]);
      },
    };
    waits.add(wait);
    return {
      // A subscription made by an earlier wait: settled already, or settling.
      ready: ready.then(() => undefined),
      until: (offset, timeoutMs) => {
        wait.offset = offset;
        for (const [device, upTo] of wait.seen) if (upTo >= offset && !wait.acked.includes(device)) wait.acked.push(device);
        if (wait.acked.length >= need) wait.done();
        else {
          timer = setTimeout(wait.done, timeoutMs);
          // An await never keeps a closing process alive; close() answers it.
          timer.unref();
        }
        return settled;
      },
      cancel: () => {
        wait.done();
      },
    };
  }

  broadcast(data: Data, from: Uid | null = null, answer = true): MaybePromise<BroadcastResult> {
    const result = this.#push({ kind: 'all' }, data, from, answer);
    return result instanceof Promise ? result.then(broadcastResult) : broadcastResult(result);
  }

  publish(group: Group, data: Data, from: Uid | null = null, answer = true): MaybePromise<PushResult> {
    return this.#push({ kind: 'group', group }, data, from, answer);
  }

  /**
   * Adds `uid` to `group` for the whole cluster, and returns once every node holding `uid`
   * has subscribed to the group's channel (or the timeout passed: a node that died keeps
   * its presence for a while, and must not hold every join up).
   *
   * @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when a cap refused the join.
   */
  async join(group: Group, uid: Uid): Promise<boolean> {
    const outcome = await this.#bound(() => this.#broker.membership.addMember(group, uid, this.#limits), 'group join');
    const added = joined(outcome, group, uid, this.#limits);
    const here = this.#joinHere(group, uid);
    // Alone, a subscription is in effect at once: answer in the same turn as a refusal
    // would, so a client's joins are answered in the order it sent them.
    if (!this.#peers) return added;
    await Promise.all([here, this.#spread(group, uid)]);
    return added;
  }

  async leave(group: Group, uid: Uid): Promise<boolean> {
    const removed = await this.#bound(() => this.#broker.membership.removeMember(group, uid), 'group leave');
    if (this.#peers) this.#publish(channel.uid(uid), { t: 'leave', group, uid });
    this.#registry.leave(group, uid);
    return removed;
  }

  /** Removes `uid` from every group it belongs to, cluster-wide; returns how many. */
  async leaveAll(uid: Uid): Promise<number> {
    const groups = await this.#bound(() => this.#broker.membership.groupsOf(uid), 'groups read');
    const left = await Promise.all(groups.map((group) => this.leave(group, uid)));
    return left.filter(Boolean).length;
  }

  // The rest of the PushService.

  kick(uid: Uid, reason: string): MaybePromise<number> {
    if (!this.#peers) return this.#hub.kick(uid, reason);
    return this.#connections([uid]).then(([connections = 0]) => {
      this.#hub.kick(uid, reason);
      this.#publish(channel.uid(uid), { t: 'kick', uid, reason });
      return connections;
    });
  }

  /**
   * Records the cut-off in the store (so nodes that start later load it), here, and on
   * every node through the broadcast channel (a node holding no connection of `uid` must
   * know it too: the kicked client may reconnect anywhere).
   */
  revokeTokens(uid: Uid, revocation: TokenRevocation): MaybePromise<void> {
    this.#cutoffs.add(uid, revocation);
    if (!this.#peers) return;
    return this.#bound(() => this.#broker.revocations.revoke({ uid, ...revocation }), 'token revocation').then(() => {
      this.#publish(channel.all, { t: 'revoke', uid, before: revocation.before, until: revocation.until });
    });
  }

  connectionsOf(uid: Uid): MaybePromise<number> {
    if (!this.#peers) return this.#hub.connectionsOf(uid);
    return this.#connections([uid]).then(([connections = 0]) => connections);
  }

  /** @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a malformed cursor. */
  listUids(cursor: string | null, limit: number): Promise<UidPage> {
    // Checked here, before any broker: an error thrown in the primary of --workers
    // crosses IPC as text and would reach the API as a 500.
    try {
      if (cursor !== null) uidOfCursor(cursor);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.#bound(() => this.#broker.presence.listUids(cursor, limit), 'uid list read');
  }

  totals(): MaybePromise<{ onlineUids: number; connections: number }> {
    if (!this.#peers) return { onlineUids: this.#hub.onlineCount, connections: this.#hub.connectionCount };
    return this.#bound(() => this.#broker.presence.totals(), 'totals read');
  }

  /** Two reads in a row, under one deadline: the answer comes within the timeout. */
  groupInfo(group: Group): Promise<GroupInfo> {
    return this.#bound(async () => {
      const members = await this.#broker.membership.members(group);
      const counts = this.#peers ? await this.#broker.presence.connections(members) : members.map((uid) => this.#hub.connectionsOf(uid));
      return {
        group,
        members: members.length,
        online: counts.filter((n) => n > 0).length,
        connections: counts.reduce((a, n) => a + n, 0),
      };
    }, 'group read');
  }

  // The choke point.

  /**
   * Every push passes here, whoever sent it: published to the target's channel, then
   * delivered to this node's connections. Where retention, webhooks and metrics hook in.
   *
   * @param answer - answer for the whole cluster (a store read); when false, or with no
   *   peers, the answer is this node's deliveries, at once.
   */
  #push(target: PushTarget, data: Data, from: Uid | null, answer: boolean): MaybePromise<PushResult> {
    if (!this.#peers) return this.#deliver(target, data, from);
    const wire = toJson(data);
    const exp = this.#expiry();
    let unique: Uid[] = [];
    let envelopes: [name: string, envelope: string][];
    switch (target.kind) {
      case 'uids':
        unique = [...new Set(target.uids)];
        envelopes = encodePushes(this.#broker.nodeId, unique, wire, from, exp).map(([uid, env]) => [channel.uid(uid), env]);
        break;
      case 'group':
        envelopes = [
          [channel.group(target.group), encodeEnvelope(this.#broker.nodeId, { t: 'publish', group: target.group, data: wire, from, exp })],
        ];
        break;
      case 'all':
        envelopes = [[channel.all, encodeEnvelope(this.#broker.nodeId, { t: 'broadcast', data: wire, from, exp })]];
        break;
    }
    let bytes = 0;
    for (const [, envelope] of envelopes) bytes += envelope.length;
    const sent = this.#admits(bytes) ? envelopes.map(([name, envelope]) => this.#send(name, envelope)) : undefined;
    // Before delivering: a slow consumer closed on the way would look absent after.
    const absent = target.kind === 'uids' ? unique.filter((uid) => !this.#hub.isOnline(uid)) : [];
    const local = this.#deliver(target.kind === 'uids' ? { kind: 'uids', uids: unique } : target, data, from);
    // Not published: whether another node held an absent uid is unknown, so no offline count.
    if (sent === undefined) return this.#unsent(local, local.connections);
    if (!answer) {
      this.#checkOffline(absent);
      return local;
    }
    return this.#answer(sent, this.#whole(target, unique, absent), local, local.connections);
  }

  /** Delivers to this node's connections. */
  #deliver(target: PushTarget, data: Data, from: Uid | null): PushResult {
    switch (target.kind) {
      case 'uids': {
        const [only] = target.uids;
        if (target.uids.length !== 1 || only === undefined) return this.#hub.sendToUids(target.uids, data, from);
        const connections = this.#hub.sendToUid(only, data, from);
        return { online: connections > 0 ? 1 : 0, connections };
      }
      case 'group':
        return this.#hub.publish(target.group, data, from);
      case 'all': {
        const connections = this.#hub.broadcast(data, from);
        return { online: 0, connections };
      }
    }
  }

  /** The whole cluster's answer to a push, from the store. */
  #whole(target: PushTarget, unique: readonly Uid[], absent: readonly Uid[]): Promise<PushResult> {
    switch (target.kind) {
      case 'uids':
        return this.#connections(unique).then((counts) => {
          if (absent.length > 0) this.#countOffline(unique, counts, new Set(absent));
          return { online: counts.filter((n) => n > 0).length, connections: counts.reduce((a, n) => a + n, 0) };
        });
      case 'group':
        return this.groupInfo(target.group).then((info) => ({ online: info.online, connections: info.connections }));
      case 'all':
        return this.#bound(() => this.#broker.presence.connectionTotal(), 'connection total read').then((connections) => ({
          online: 0,
          connections,
        }));
    }
  }

  #connections(uids: readonly Uid[]): Promise<number[]> {
    return this.#bound(() => this.#broker.presence.connections(uids), 'presence read');
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
      this.#connections(uids).then(
        (counts) => {
          this.#countOffline(uids, counts, new Set(uids), times);
        },
        (err: unknown) => {
          this.#notice('offline check', 'cluster: cannot read presence to count offline pushes', { err });
        },
      );
    });
  }

  // Interest: what this node subscribes to, and the two orderings.

  /**
   * A uid's first connection here: subscribe to its channel, then record its presence,
   * then read its groups and subscribe to theirs, in that order. A join made anywhere is
   * then seen: either this node was subscribed when the join was published (and the join's
   * node waits for this node's answer), or the store already held it when the groups
   * were read. Connections that bind meanwhile get their login reply when this settles.
   */
  #online(uid: Uid): void {
    const preparing: Preparing = { ready: RESOLVED };
    this.#preparing.set(uid, preparing);
    const current = (): boolean => this.#preparing.get(uid) === preparing;
    const ready = this.#bound(() => this.#prepare(uid, current), 'login').catch((err: unknown) => {
      // The client is served here anyway; pushes through other nodes may miss it a while.
      this.#notice('login', "cluster: a uid's channels are not subscribed in time; its login reply is sent anyway", { err, uid });
    });
    preparing.ready = ready.then(() => {
      if (current()) this.#preparing.delete(uid);
    });
  }

  async #prepare(uid: Uid, current: () => boolean): Promise<void> {
    await this.#subscribe(channel.uid(uid));
    if (!current()) return;
    const written = this.#registry.countOf(uid);
    await this.#broker.presence.setLocal(uid, written);
    if (!current()) return;
    const groups = await this.#broker.membership.groupsOf(uid);
    if (!current()) return;
    await Promise.all(groups.map((group) => this.#joinHere(group, uid)));
    // Connections that came or went while the first count was being written.
    const now = this.#registry.countOf(uid);
    if (current() && now !== written) void this.#setLocal(uid, now);
  }

  /** Adds `uid`, if online here, to `group` here; settles once the group's channel is subscribed. */
  #joinHere(group: Group, uid: Uid): Promise<void> {
    this.#registry.join(group, uid);
    if (!this.#registry.isMember(group, uid)) return RESOLVED;
    return this.#groupSubscriptions.get(group) ?? RESOLVED;
  }

  /**
   * Tells the other nodes holding `uid` that it joined `group`, and waits until each has
   * answered that it subscribed to the group's channel, or the timeout passed.
   */
  async #spread(group: Group, uid: Uid): Promise<void> {
    if (!this.#peers) return;
    let holders: string[];
    try {
      holders = await this.#bound(() => this.#broker.presence.holders(uid), 'presence read');
    } catch (err) {
      // The membership is recorded: nodes that take the uid later read it from the store.
      this.#notice('join spread', 'cluster: cannot read which nodes hold a uid; a join is not confirmed', { err, uid });
      this.#publish(channel.uid(uid), { t: 'join', group, uid });
      return;
    }
    const others = holders.filter((node) => node !== this.#broker.nodeId);
    if (others.length === 0) {
      // Still told: a node taking the uid's first connection now may be subscribed
      // already, yet not in the store's presence.
      this.#publish(channel.uid(uid), { t: 'join', group, uid });
      return;
    }
    const ref = `${this.#broker.nodeId}:${String(this.#nextRef++)}`;
    await new Promise<void>((resolve) => {
      const cancel = this.#deadlines.add(() => {
        if (!this.#spreads.delete(ref)) return;
        this.#notice('join wait', 'cluster: a node holding the uid did not confirm a join in time', {
          uid,
          group,
          waiting: [...spread.waiting],
        });
        resolve();
      });
      const spread: Spread = {
        waiting: new Set(others),
        done: () => {
          cancel();
          this.#spreads.delete(ref);
          resolve();
        },
      };
      this.#spreads.set(ref, spread);
      this.#publish(channel.uid(uid), { t: 'join', group, uid, ref });
    });
  }

  #joinedBy(node: string, ref: string): void {
    const spread = this.#spreads.get(ref);
    if (spread === undefined) return;
    spread.waiting.delete(node);
    if (spread.waiting.size === 0) spread.done();
  }

  #subscribe(name: string): Promise<void> {
    return this.#broker.subscribe(name).catch((err: unknown) => {
      this.#notice('subscribe', 'cluster: subscribe failed', { err, channel: name });
    });
  }

  #unsubscribe(name: string): void {
    this.#broker.unsubscribe(name);
  }

  /** Tells `onOffline` once the zero count just issued is written, unless `uid` came back meanwhile. */
  #recordedOffline(uid: Uid): void {
    const tell = this.#onOffline;
    if (tell === undefined) return;
    void this.#lastWrite.then(() => {
      if (this.#registry.countOf(uid) > 0) return;
      try {
        tell(uid);
      } catch (err) {
        this.#log.error({ err, uid }, 'offline listener failed');
      }
    });
  }

  /** Records this node's count of `uid`; settles (never rejects) once written, or failed. */
  #setLocal(uid: Uid, connections: number): Promise<void> {
    return this.#broker.presence.setLocal(uid, connections).catch((err: unknown) => {
      this.#notice('presence', 'cluster: cannot record presence', { err, uid });
    });
  }

  // Publishing and answers.

  /** A store call that may answer at once (in-process stores): bounded in a cluster, as is with no peers. */
  #boundMaybe<T>(call: () => MaybePromise<T>, what: string): MaybePromise<T> {
    if (!this.#peers) {
      try {
        return call();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return this.#deadlines.race(() => Promise.resolve(call()), what);
  }

  /** A store call under the broker timeout; with no peers, the call alone (it answers at once). */
  #bound<T>(call: () => Promise<T>, what: string): Promise<T> {
    return this.#peers ? this.#deadlines.race(call, what) : call();
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
    this.#notice('refused', "cluster: broker unavailable or over its bounds; pushes reach this node's clients only", {
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
    const env = decoded.env;
    // A retained push is published by the inbox store, own ones included: delivered from
    // the subscription, in offset order with every other node's.
    if (env.t === 'push' && env.off !== undefined && env.ep !== undefined) {
      if (this.#inbox === undefined) return;
      this.#hub.sendRetained(env.uid, env.data, env.from, { offset: env.off, epoch: env.ep, key: env.key });
      return;
    }
    if (decoded.node === this.#broker.nodeId) return;
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
      case 'join': {
        const { ref } = env;
        const subscribed = this.#joinHere(env.group, env.uid);
        if (ref === undefined) return;
        const reply = channel.node(decoded.node);
        void subscribed.then(() => {
          this.#publish(reply, { t: 'joined', ref });
        });
        return;
      }
      case 'joined':
        this.#joinedBy(decoded.node, env.ref);
        return;
      case 'leave':
        this.#registry.leave(env.group, env.uid);
        return;
      case 'acked':
        this.#receipt(env.uid, env.device, env.upTo);
        return;
    }
  }
}

/** Where a retained push went: one uid's offset and epoch, or each uid's. */
function placeOf(uids: readonly Uid[], positions: readonly Appended[]): Partial<PushResult> {
  const [only] = positions;
  if (positions.length === 1 && only !== undefined) {
    return only.duplicate ? { offset: only.offset, epoch: only.epoch, duplicate: true } : { offset: only.offset, epoch: only.epoch };
  }
  return {
    positions: positions.map((p, i): UidPosition => {
      const position: UidPosition = { uid: uids[i] as Uid, epoch: p.epoch, offset: p.offset };
      if (p.duplicate) position.duplicate = true;
      return position;
    }),
  };
}

/** A broadcast answers connections only: `online` means nothing without a target. */
function broadcastResult({ connections, degraded }: PushResult): BroadcastResult {
  return degraded === undefined ? { connections } : { connections, degraded };
}

/** Data as it crosses the wire: text stays text, bytes become their UTF-8 string. */
function toJson(data: Data): JsonValue {
  if (!(data instanceof Uint8Array)) return data;
  return (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)).toString('utf8');
}

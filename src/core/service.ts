import type { AckOutcome, DeliveryClass, InboxInfo, InboxPosition, InboxRefusal, InboxWelcome, ResumeRequest } from './inbox.js';
import type { Data, Group, Uid } from './types.js';

/**
 * Counters and gauges of a running server, as `GET /v1/stats` and /metrics report them.
 * `onlineUids` and `connections` are the whole cluster's (read from its store); every other
 * figure is this server's: one process, or under `--workers` all its workers together,
 * whichever worker answers (docs/http-api.md, "GET /v1/stats").
 */
export interface ServiceStats {
  /** Uids with at least one logged-in connection anywhere in the cluster, each counted once. */
  onlineUids: number;
  /** Logged-in connections anywhere in the cluster. */
  connections: number;
  /** Uids with a logged-in connection on this server (a uid on two of its workers counts once). */
  localOnlineUids: number;
  /** Logged-in connections on this server. */
  localConnections: number;
  /** Open WebSocket connections on this server, logged in or not. */
  openConnections: number;
  /** Messages received from clients. */
  messagesIn: number;
  /** Bytes of messages received from clients. */
  bytesIn: number;
  /** Frames written to clients (one per recipient connection). */
  messagesOut: number;
  /** Bytes written to clients. */
  bytesOut: number;
  /**
   * Messages not delivered, by reason. In a cluster a push is `offline` only when no node
   * holds the uid, and it is counted once, by the node that took the push.
   */
  dropped: Record<DropReason, number>;
  /** Connections closed by the heartbeat (dead peers) or the login timeout. */
  heartbeatCloses: number;
  /** Closing connections destroyed because the peer did not answer within `closeGrace`. */
  closeGraceTerminations: number;
  /** WebSocket handshakes refused at the upgrade, by cause. */
  upgradesRefused: Record<UpgradeRefusal, number>;
  /** Seconds since the server was created. */
  uptimeSeconds: number;
  /** What waits for the cluster's broker, and what its bounds did; only in a cluster. */
  broker?: BrokerStats;
  /** Under `--workers`: each worker's own figures, in worker id order. */
  workers?: WorkerStats[];
}

/** One worker's share of {@link ServiceStats} under `--workers`. */
export interface WorkerStats {
  /** The node:cluster worker id. */
  worker: number;
  pid: number;
  /** Uids with a logged-in connection on this worker. */
  onlineUids: number;
  /** Logged-in connections on this worker. */
  connections: number;
  /** Open WebSocket connections on this worker, logged in or not. */
  openConnections: number;
  messagesIn: number;
  messagesOut: number;
  uptimeSeconds: number;
}

/** The broker bounds of a cluster node (docs/operations.md, "During a Redis outage"). */
export interface BrokerStats {
  /** Bytes of publishes handed to the broker and not yet answered. */
  pendingBytes: number;
  /** Publishes handed to the broker and not yet answered. */
  pendingPublishes: number;
  /** How long the oldest of them has waited, in ms (0: none waits). */
  oldestPendingMs: number;
  /** Pushes not published: the broker was down, or over `brokerMaxPendingBytes` or `brokerTimeout`. */
  refusedPushes: number;
  /** Pushes from other nodes dropped on arrival: older than the sender's `brokerTimeout`. */
  stalePushes: number;
  /** Pushes answered with this node's deliveries only (`degraded: true`). */
  degradedPushes: number;
}

/**
 * Why a message was not delivered: `offline` (a push to a uid with no connection, on any node),
 * `slow_consumer` (the recipient's send buffer was full), or the error code a client's
 * message was refused with.
 */
export type DropReason = 'offline' | 'slow_consumer' | 'bad_request' | 'too_large' | 'rate_limited';

/**
 * Why a handshake was refused before ws read it: `pending` (503, `maxPendingConnections`),
 * `per_ip` (429, `maxConnectionsPerIp`), `handshake_rate` (429, `maxHandshakesPerIp`).
 */
export type UpgradeRefusal = 'pending' | 'per_ip' | 'handshake_rate';

/** How to push to uids (docs/delivery.md). */
export interface PushOptions {
  /** Retained or not; the server's `defaultDelivery` when absent. */
  delivery?: DeliveryClass | undefined;
  /** A retry with the same key within the idempotency window retains nothing new and answers the first push's position. */
  idempotencyKey?: string | undefined;
  /** Wait, up to `timeoutMs` (at most 30000), until `acked` devices of the uid (one uid only) acked the push. */
  await?: { acked: number; timeoutMs: number } | undefined;
}

/** Where a push to one uid of several was retained. */
export interface UidPosition extends InboxPosition {
  uid: Uid;
  /** True when an earlier push with the same idempotency key was retained, and nothing new is. */
  duplicate?: true;
}

/** The result of pushing to one or more uids. */
export interface PushResult {
  /** Uids that had at least one connection. */
  online: number;
  /** Connections written to. */
  connections: number;
  /** A retained push to one uid: its offset and epoch in the uid's inbox. */
  offset?: number;
  epoch?: string;
  /** A retained push to one uid whose idempotency key was seen: nothing new was retained. */
  duplicate?: true;
  /** A retained push to several uids: each uid's position, in the order given. */
  positions?: UidPosition[];
  /** With `await`: the devices that acked the push within the time, in the order they did. */
  acked?: string[];
  /** With `await`: true when no device acked within the time. */
  undelivered?: boolean;
  /**
   * Set when the cluster's broker could not be reached: the counts are this node's own
   * deliveries, and clients of other nodes did not get the message (see docs/operations.md).
   */
  degraded?: true;
}

/** The result of a broadcast. */
export interface BroadcastResult {
  /** Connections written to. */
  connections: number;
  /** As in {@link PushResult.degraded}: only this node's connections got it. */
  degraded?: true;
}

/**
 * A value, or a promise of it: a single node answers at once, a cluster may have to ask
 * the broker's store.
 */
export type MaybePromise<T> = T | Promise<T>;

/** Calls `then` with a result now if it is ready, or when it is. */
export function whenReady<T>(result: MaybePromise<T>, then: (value: T) => void, onError: (err: unknown) => void): void {
  if (result instanceof Promise) result.then(then, onError);
  else then(result);
}

/**
 * What a client session asks of the node it runs on: to bind a connection to its uid, and
 * the pushes and membership changes a client may make. Alone, a node answers at once; in a
 * cluster it publishes to the others first, then delivers here, and results may come later
 * (delivery itself starts at the call). A cluster whose broker is unavailable answers with
 * `degraded: true` (delivered here only) or rejects with an UnavailableError (delivered to
 * no one).
 */
export interface SessionNode<C> {
  /**
   * Binds `conn` to `uid` and calls `attached` once a push sent through any node reaches it
   * (at once when nothing need wait): the login reply is sent from there, so no push sent
   * after the reply can miss the connection. Never called if {@link detach} came first.
   * With `resume` (a v1 connection) and the inbox on, `attached` gets the device's place in
   * the inbox for the welcome, and the replay is written after it; or a refusal (a bad
   * `since`, an inbox store that did not answer), with the connection detached already.
   */
  attach(conn: C, uid: Uid, attached: (conn: C, inbox?: InboxWelcome | InboxRefusal) => void, resume?: ResumeRequest): void;
  /** Unbinds `conn` (or stops an attach in progress); nothing if it was not bound. */
  detach(conn: C): void;
  /** The uid `conn` is bound to, if it is. */
  uidOf(conn: C): Uid | undefined;
  /**
   * @param answer - answer for the whole cluster (a store lookup in a cluster); when false,
   *   the answer counts this node's deliveries only and costs nothing extra. The seed
   *   protocol, which sends no acknowledgement, never asks.
   */
  sendToUid(uid: Uid, data: Data, from: Uid | null, answer: boolean, delivery?: DeliveryClass): MaybePromise<PushResult>;
  /**
   * A device's ack on `conn`: moves its cursor in the uid's inbox (docs/delivery.md).
   * Undefined when the connection has no inbox (a seed connection, or the inbox off).
   */
  ack(conn: C, upTo: number): MaybePromise<AckOutcome> | undefined;
  /** Whether pushes may be retained: the inbox is on. */
  readonly inboxOn: boolean;
  broadcast(data: Data, from: Uid | null, answer: boolean): MaybePromise<BroadcastResult>;
  publish(group: Group, data: Data, from: Uid | null, answer: boolean): MaybePromise<PushResult>;
  /** @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when a cap refused the join. */
  join(group: Group, uid: Uid): MaybePromise<boolean>;
  leave(group: Group, uid: Uid): MaybePromise<boolean>;
}

/** A group's members, how many of them are online, and their connections. */
export interface GroupInfo {
  group: Group;
  members: number;
  online: number;
  connections: number;
}

/**
 * A token cut-off: a uid's tokens whose `iat` is earlier than `before` are refused until
 * `until`. Both in ms since the epoch; `before` is the kick's time rounded down to the
 * second, since `iat` counts whole seconds.
 */
export interface TokenRevocation {
  before: number;
  until: number;
}

/** A page of online uids. */
export interface UidPage {
  uids: Uid[];
  /** Pass it back to get the next page; null when this was the last page. */
  nextCursor: string | null;
}

/**
 * What the server API and the inner text port need from the server. The server implements
 * it on top of the hub; tests may implement it with a fake.
 */
export interface PushService {
  /**
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for options that do not fit (a retained
   *   class with the inbox off, `await` on several uids or an ephemeral push, an oversize key).
   */
  pushToUids(uids: readonly Uid[], data: Data, options?: PushOptions): MaybePromise<PushResult>;
  /** A uid's inbox: position, retained range and device cursors. */
  inboxOf(uid: Uid): MaybePromise<InboxInfo>;
  broadcast(data: Data): MaybePromise<BroadcastResult>;
  publish(group: Group, data: Data): MaybePromise<PushResult>;
  /**
   * Adds `uid` to `group`; false if it already was a member.
   * @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED past `maxGroupsPerUid` or `maxMembersPerGroup`.
   */
  join(group: Group, uid: Uid): MaybePromise<boolean>;
  /** Removes `uid` from `group`; false if it was not a member. */
  leave(group: Group, uid: Uid): MaybePromise<boolean>;
  /** Removes `uid` from every group; how many it left. */
  leaveAll(uid: Uid): MaybePromise<number>;
  groupInfo(group: Group): MaybePromise<GroupInfo>;
  connectionsOf(uid: Uid): MaybePromise<number>;
  /** @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a cursor the server did not make. */
  listUids(cursor: string | null, limit: number): MaybePromise<UidPage>;
  kick(uid: Uid, reason: string): MaybePromise<number>;
  /**
   * Refuses, on every node, the tokens of `uid` issued before now, for the server's
   * `revokeTtl`. Called before {@link kick} when a kick revokes tokens, so a client closed
   * by the kick cannot log in again with the token it holds.
   */
  revokeTokens(uid: Uid): MaybePromise<TokenRevocation>;
  stats(): MaybePromise<ServiceStats>;
  /** Whether the server accepts clients (false before listen and while shutting down). */
  ready(): boolean;
}

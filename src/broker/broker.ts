import type { AckOutcome, Appended, AppendRequest, InboxInfo, InboxOpened, InboxPage, Retention } from '../core/inbox.js';
import type { GroupLimits, JoinOutcome } from '../core/limits.js';
import type { MaybePromise, TokenRevocation, UidPage } from '../core/service.js';
import type { Group, Uid } from '../core/types.js';

/**
 * The seam between local delivery and cluster fan-out. A broker carries envelopes (already
 * serialised) between nodes on named channels, and keeps the state every node must agree
 * on in three stores by role: who is online where, group membership, token cut-offs. It
 * never sees sockets or the registry.
 *
 * Order is the caller's: publish to the others, then deliver locally whatever the publish
 * did. A failed publish rejects; the caller logs it and local delivery still happens.
 */
export interface Broker extends BrokerStores {
  /** This node's id, unique in the cluster. */
  readonly nodeId: string;
  /**
   * Whether other nodes may exist. False (a {@link LocalBroker}): nobody would read an
   * envelope, so the node encodes and publishes none; true for every broker that links
   * nodes (memory, IPC, Redis).
   */
  readonly peers: boolean;
  /** Starts; `onMessage` gets every message on a subscribed channel, own ones included. */
  start(onMessage: (channel: string, message: string) => void): Promise<void>;
  /** Messages one node publishes on one channel arrive in the order it published them. */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Subscribes while this node has interest (a local uid, a local group member). Resolves
   * once the subscription is in effect: a message another node publishes after that is
   * delivered. Called before {@link start}, it resolves once start has made it. Rejects if
   * the subscription cannot be made; the broker has handled the rejection already, so a
   * caller that ignores it (`void`) never causes an unhandled rejection.
   */
  subscribe(channel: string): Promise<void>;
  /** Ends the subscription: messages published after it takes effect are not delivered. */
  unsubscribe(channel: string): void;
  /** Whether the broker can reach the other nodes now. */
  isReady(): boolean;
  close(): Promise<void>;
}

/** The stores of a broker, by role. */
export interface BrokerStores {
  readonly presence: PresenceStore;
  readonly membership: MembershipStore;
  readonly revocations: RevocationStore;
  readonly inbox: InboxStore;
}

/** A uid's token cut-off, as the store keeps it. */
export interface UidRevocation extends TokenRevocation {
  uid: Uid;
}

/** Who is online where, over every live node. */
export interface PresenceStore {
  /**
   * Records how many connections `uid` has on this node (0: none). Resolves once every
   * node's reads see it; a caller may ignore the promise, which never rejects unhandled.
   * Called on every login and logout: in-process stores answer with one shared, already
   * resolved promise.
   */
  setLocal(uid: Uid, connections: number): Promise<void>;
  /** Connections of each uid over every live node. */
  connections(uids: readonly Uid[]): Promise<number[]>;
  /** Ids of the live nodes that hold a connection of `uid`, this one included. */
  holders(uid: Uid): Promise<string[]>;
  /** Online uids and connections over every live node. */
  totals(): Promise<{ onlineUids: number; connections: number }>;
  /**
   * Connections over every live node, without reading who holds them: what a broadcast
   * answers, so it must stay cheap however many uids are online.
   */
  connectionTotal(): Promise<number>;
  /**
   * Online uids over every live node, a page at a time, in code-point order with the
   * cursor of core/uid-order.ts: the same order and cursors in every topology.
   */
  listUids(cursor: string | null, limit: number): Promise<UidPage>;
}

/** Group membership, for the whole cluster. */
export interface MembershipStore {
  /**
   * Adds `uid` to `group` within `limits`, for the whole cluster: an existing membership
   * is never refused, and neither set ever grows past its cap, however many nodes join
   * at once.
   */
  addMember(group: Group, uid: Uid, limits: GroupLimits): Promise<JoinOutcome>;
  removeMember(group: Group, uid: Uid): Promise<boolean>;
  members(group: Group): Promise<Uid[]>;
  groupsOf(uid: Uid): Promise<Group[]>;
}

/** Token cut-offs (kicks with `revokeTokens`), for the whole cluster. */
export interface RevocationStore {
  /**
   * Records a token cut-off for `uid`, kept until its `until`; with one already there,
   * the later of each bound wins.
   */
  revoke(revocation: UidRevocation): Promise<void>;
  /** Every cut-off still in force: what a node loads at start, and reloads now and then. */
  revocations(): Promise<UidRevocation[]>;
}

/**
 * What a retained push publishes, once its offset is known: `before + offset + ',"ep":' +
 * JSON of the epoch + after` on `channel`. The store publishes it in the same step as the
 * append (one Lua script on Redis, one turn in memory), so every node receives a uid's
 * retained pushes in offset order.
 */
export interface RetainedEnvelope {
  readonly channel: string;
  readonly before: string;
  readonly after: string;
}

/** The text a {@link RetainedEnvelope} publishes for `offset` in `epoch`. */
export function retainedMessage(envelope: RetainedEnvelope, offset: number, epoch: string): string {
  return `${envelope.before}${String(offset)},"ep":"${epoch}"${envelope.after}`;
}

/**
 * The per-uid inboxes (docs/delivery.md), for the whole cluster. Every call takes the
 * node's {@link Retention}; the store keeps no configuration. In-process stores answer at
 * once (a value, not a promise), so the single process pays no promise per push.
 */
export interface InboxStore {
  /**
   * Retains one push to `uid` at the next offset (a new epoch if the uid has no inbox) and,
   * in the same step, publishes `envelope` with that offset; trims by count and age. With
   * an `idempotencyKey` seen within `retention.idempotencyMs`, retains and publishes
   * nothing and answers the first push's position with `duplicate: true`.
   */
  append(uid: Uid, entry: AppendRequest, envelope: RetainedEnvelope | undefined, retention: Retention): MaybePromise<Appended>;
  /**
   * What a connecting `device` of `uid` finds: epoch, top, lowest retained offset and the
   * device's cursor (null, and registered at the top, when the inbox did not know it).
   * Makes the inbox (a new epoch, top 0) when the uid has none, and refreshes its meta.
   */
  open(uid: Uid, device: string, retention: Retention): MaybePromise<InboxOpened>;
  /** Up to `limit` retained entries after offset `after`, in offset order. */
  read(uid: Uid, after: number, limit: number, retention: Retention): MaybePromise<InboxPage>;
  /** Moves `device`'s cursor to `upTo`; refused when unknown, backwards or beyond the top. */
  ack(uid: Uid, device: string, upTo: number, retention: Retention): MaybePromise<AckOutcome>;
  /** The inbox's position, retained range and devices; `epoch: null` when it has none. */
  info(uid: Uid, retention: Retention): MaybePromise<InboxInfo>;
}

/**
 * The three stores in one, as brokers before they were split by role kept them.
 * @deprecated Use {@link PresenceStore}, {@link MembershipStore}, {@link RevocationStore}.
 */
export type ClusterStore = PresenceStore & MembershipStore & RevocationStore;

/**
 * The one settled promise in-process stores and brokers answer a write with: no promise
 * is made per call on the single-process path.
 */
export const RESOLVED: Promise<void> = Promise.resolve();

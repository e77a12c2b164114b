import type { GroupLimits, JoinOutcome } from '../core/limits.js';
import type { TokenRevocation, UidPage } from '../core/service.js';
import type { Group, Uid } from '../core/types.js';

/**
 * The seam between local delivery and cluster fan-out. A broker carries envelopes (already
 * serialised) between nodes on named channels, and keeps the state every node must agree
 * on: who is online where, and group membership. It never sees sockets or the registry.
 *
 * Order is the caller's: publish to the others, then deliver locally whatever the publish
 * did. A failed publish rejects; the caller logs it and local delivery still happens.
 */
export interface Broker {
  /** This node's id, unique in the cluster. */
  readonly nodeId: string;
  /** Starts; `onMessage` gets every message on a subscribed channel, own ones included. */
  start(onMessage: (channel: string, message: string) => void): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  /** Subscribes while this node has interest (a local uid, a local group member). */
  subscribe(channel: string): void;
  unsubscribe(channel: string): void;
  /** Whether the broker can reach the other nodes now. */
  isReady(): boolean;
  readonly store: ClusterStore;
  close(): Promise<void>;
}

/** A uid's token cut-off, as the store keeps it. */
export interface UidRevocation extends TokenRevocation {
  uid: Uid;
}

/** State shared by every node. */
export interface ClusterStore {
  /** Records how many connections `uid` has on this node (0: none). */
  setLocal(uid: Uid, connections: number): void;
  /** Connections of each uid over every live node. */
  connections(uids: readonly Uid[]): Promise<number[]>;
  /** Online uids and connections over every live node. */
  totals(): Promise<{ onlineUids: number; connections: number }>;
  /**
   * Connections over every live node, without reading who holds them: what a broadcast
   * answers, so it must stay cheap however many uids are online.
   */
  connectionTotal(): Promise<number>;
  /** Online uids over every live node, a page at a time, in a stable order. */
  listUids(cursor: string | null, limit: number): Promise<UidPage>;
  /**
   * Adds `uid` to `group` within `limits`, for the whole cluster: an existing membership
   * is never refused, and neither set ever grows past its cap, however many nodes join
   * at once.
   */
  addMember(group: Group, uid: Uid, limits: GroupLimits): Promise<JoinOutcome>;
  removeMember(group: Group, uid: Uid): Promise<boolean>;
  members(group: Group): Promise<Uid[]>;
  groupsOf(uid: Uid): Promise<Group[]>;
  /**
   * Records a token cut-off for `uid` (a kick with `revokeTokens`), kept until its
   * `until`; with one already there, the later of each bound wins.
   */
  revoke(revocation: UidRevocation): Promise<void>;
  /** Every cut-off still in force: what a node loads at start, and reloads now and then. */
  revocations(): Promise<UidRevocation[]>;
}

// Temporary: the broker shape the node is written for, over today's Broker, until the
// broker folder gives it (stores by role, awaited subscriptions, peers).
import type { Broker as OldBroker, ClusterStore, UidRevocation } from '../broker/broker.js';
import { MemoryCluster } from '../broker/memory.js';
import type { GroupLimits, JoinOutcome } from '../core/limits.js';
import type { UidPage } from '../core/service.js';
import type { Group, Uid } from '../core/types.js';

export interface Broker {
  readonly nodeId: string;
  readonly peers: boolean;
  start(onMessage: (channel: string, message: string) => void): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): void;
  isReady(): boolean;
  readonly presence: {
    setLocal(uid: Uid, connections: number): Promise<void>;
    connections(uids: readonly Uid[]): Promise<number[]>;
    totals(): Promise<{ onlineUids: number; connections: number }>;
    connectionTotal(): Promise<number>;
    listUids(cursor: string | null, limit: number): Promise<UidPage>;
    holders(uid: Uid): Promise<string[]>;
  };
  readonly membership: {
    addMember(group: Group, uid: Uid, limits: GroupLimits): Promise<JoinOutcome>;
    removeMember(group: Group, uid: Uid): Promise<boolean>;
    members(group: Group): Promise<Uid[]>;
    groupsOf(uid: Uid): Promise<Group[]>;
  };
  readonly revocations: {
    revoke(revocation: UidRevocation): Promise<void>;
    revocations(): Promise<UidRevocation[]>;
  };
  close(): Promise<void>;
}

export function adapt(old: OldBroker, peers = true): Broker {
  const store: ClusterStore = old.store;
  return {
    nodeId: old.nodeId,
    peers,
    start: (on) => old.start(on),
    publish: (c, m) => old.publish(c, m),
    subscribe: (c) => {
      old.subscribe(c);
      return Promise.resolve();
    },
    unsubscribe: (c) => {
      old.unsubscribe(c);
    },
    isReady: () => old.isReady(),
    presence: {
      setLocal: (uid, n) => {
        store.setLocal(uid, n);
        return Promise.resolve();
      },
      connections: (u) => store.connections(u),
      totals: () => store.totals(),
      connectionTotal: () => store.connectionTotal(),
      listUids: (c, l) => store.listUids(c, l),
      holders: () => Promise.resolve([]),
    },
    membership: {
      addMember: (g, u, l) => store.addMember(g, u, l),
      removeMember: (g, u) => store.removeMember(g, u),
      members: (g) => store.members(g),
      groupsOf: (u) => store.groupsOf(u),
    },
    revocations: { revoke: (r) => store.revoke(r), revocations: () => store.revocations() },
    close: () => old.close(),
  };
}

export function localBroker(): Broker {
  return adapt(new MemoryCluster().createBroker(), false);
}

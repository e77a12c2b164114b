import { randomUUID } from 'node:crypto';
import { UidIndex } from '../core/uid-order.js';
import type { Group, Uid } from '../core/types.js';
import type { Broker, ClusterStore, UidRevocation } from './broker.js';

/**
 * An in-process cluster: several nodes in one process share a bus and a store. It is what
 * the broker contract suite runs "3 nodes" on without any service, and a reference for
 * writing a broker. Messages are delivered asynchronously, as over a network.
 */
export class MemoryCluster {
  readonly #nodes = new Set<MemoryBroker>();
  readonly #presence = new Map<Uid, Map<string, number>>();
  readonly #members = new Map<Group, Set<Uid>>();
  readonly #groupsOf = new Map<Uid, Set<Group>>();
  #connections = 0;
  readonly #online = new UidIndex();
  readonly #revoked = new Map<Uid, UidRevocation>();
  /** When false, every publish fails, as with a broker outage. */
  up = true;

  /** A broker for one more node of this cluster. */
  createBroker(nodeId: string = randomUUID()): Broker {
    const broker = new MemoryBroker(nodeId, this);
    return broker;
  }

  /** @internal */
  attach(node: MemoryBroker): void {
    this.#nodes.add(node);
  }

  /** @internal */
  detach(node: MemoryBroker): void {
    this.#nodes.delete(node);
    for (const [uid, byNode] of this.#presence) {
      this.#connections -= byNode.get(node.nodeId) ?? 0;
      byNode.delete(node.nodeId);
      if (byNode.size === 0) this.#forget(uid);
    }
  }

  #forget(uid: Uid): void {
    this.#presence.delete(uid);
    this.#online.delete(uid);
  }

  /** @internal */
  route(channel: string, message: string): void {
    for (const node of this.#nodes) {
      if (node.subscribed(channel)) node.enqueue(channel, message);
    }
  }

  /** @internal */
  store(nodeId: string): ClusterStore {
    return {
      setLocal: (uid, connections) => {
        let byNode = this.#presence.get(uid);
        this.#connections += connections - (byNode?.get(nodeId) ?? 0);
        if (connections === 0) {
          byNode?.delete(nodeId);
          if (byNode?.size === 0) this.#forget(uid);
          return;
        }
        if (byNode === undefined) {
          byNode = new Map();
          this.#presence.set(uid, byNode);
          this.#online.add(uid);
        }
        byNode.set(nodeId, connections);
      },
      connections: (uids) => Promise.resolve(uids.map((uid) => sum(this.#presence.get(uid)))),
      totals: () => Promise.resolve({ onlineUids: this.#presence.size, connections: this.#connections }),
      connectionTotal: () => Promise.resolve(this.#connections),
      listUids: (cursor, limit) => Promise.resolve(this.#online.page(cursor, limit)),
      // One process, one turn: the check and the add cannot interleave with another join.
      addMember: (group, uid, limits) => {
        const members = this.#members.get(group);
        if (members?.has(uid) === true) return Promise.resolve('member');
        if ((this.#groupsOf.get(uid)?.size ?? 0) >= limits.maxGroupsPerUid) return Promise.resolve('uid_full');
        if ((members?.size ?? 0) >= limits.maxMembersPerGroup) return Promise.resolve('group_full');
        addTo(this.#members, group, uid);
        addTo(this.#groupsOf, uid, group);
        return Promise.resolve('added');
      },
      removeMember: (group, uid) =>
        Promise.resolve(removeFrom(this.#members, group, uid) && removeFrom(this.#groupsOf, uid, group)),
      members: (group) => Promise.resolve([...(this.#members.get(group) ?? [])]),
      groupsOf: (uid) => Promise.resolve([...(this.#groupsOf.get(uid) ?? [])]),
      revoke: (r) => {
        const known = this.#revoked.get(r.uid);
        this.#revoked.set(r.uid, {
          uid: r.uid,
          before: Math.max(r.before, known?.before ?? 0),
          until: Math.max(r.until, known?.until ?? 0),
        });
        return Promise.resolve();
      },
      revocations: () => {
        const now = Date.now();
        const live: UidRevocation[] = [];
        for (const [uid, r] of this.#revoked) {
          if (r.until <= now) this.#revoked.delete(uid);
          else live.push({ ...r });
        }
        return Promise.resolve(live);
      },
    };
  }
}

class MemoryBroker implements Broker {
  readonly nodeId: string;
  readonly store: ClusterStore;
  readonly #cluster: MemoryCluster;
  readonly #channels = new Set<string>();
  /** channel, message, channel, message, ... */
  #inbox: string[] = [];
  #onMessage: ((channel: string, message: string) => void) | undefined;

  constructor(nodeId: string, cluster: MemoryCluster) {
    this.nodeId = nodeId;
    this.#cluster = cluster;
    this.store = cluster.store(nodeId);
  }

  start(onMessage: (channel: string, message: string) => void): Promise<void> {
    this.#onMessage = onMessage;
    this.#cluster.attach(this);
    return Promise.resolve();
  }

  publish(channel: string, message: string): Promise<void> {
    if (!this.#cluster.up) return Promise.reject(new Error('memory cluster is down'));
    this.#cluster.route(channel, message);
    return Promise.resolve();
  }

  subscribe(channel: string): void {
    this.#channels.add(channel);
  }

  unsubscribe(channel: string): void {
    this.#channels.delete(channel);
  }

  isReady(): boolean {
    return this.#cluster.up;
  }

  close(): Promise<void> {
    this.#cluster.detach(this);
    this.#onMessage = undefined;
    return Promise.resolve();
  }

  /** @internal */
  subscribed(channel: string): boolean {
    return this.#channels.has(channel);
  }

  /** @internal queues a message for the next event-loop turn, as a network would. */
  enqueue(channel: string, message: string): void {
    if (this.#inbox.push(channel, message) === 2) setImmediate(this.#deliver);
  }

  // One immediate per turn, not per message: the primary of `--workers` relays every
  // cross-worker push through here.
  readonly #deliver = (): void => {
    const inbox = this.#inbox;
    this.#inbox = [];
    for (let i = 0; i + 1 < inbox.length; i += 2) {
      const channel = inbox[i] ?? '';
      if (this.#channels.has(channel)) this.#onMessage?.(channel, inbox[i + 1] ?? '');
    }
  };
}

function sum(byNode: Map<string, number> | undefined): number {
  let n = 0;
  if (byNode !== undefined) for (const c of byNode.values()) n += c;
  return n;
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  if (set.has(value)) return false;
  set.add(value);
  return true;
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean {
  const set = map.get(key);
  if (set?.delete(value) !== true) return false;
  if (set.size === 0) map.delete(key);
  return true;
}

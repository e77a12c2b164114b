import { randomUUID } from 'node:crypto';
import { UnavailableError } from '../core/errors.js';
import { RESOLVED, type Broker, type InboxStore, type MembershipStore, type PresenceStore, type RevocationStore } from './broker.js';
import { MemoryInbox } from './memory-inbox.js';
import { MemoryMembership, MemoryPresence, MemoryRevocations } from './memory-stores.js';

/**
 * An in-process cluster: several nodes in one process share a bus and the in-memory
 * stores. It is what the broker contract suite runs "3 nodes" on without any service, and
 * a reference for writing a broker. Messages are delivered asynchronously, as over a
 * network; a retained push's envelope too, routed in the step of its append.
 */
export class MemoryCluster {
  readonly #nodes = new Set<MemoryBroker>();
  readonly #presence = new MemoryPresence();
  /** The cluster's membership, shared by every node. */
  readonly membership: MembershipStore = new MemoryMembership();
  /** The cluster's token cut-offs, shared by every node. */
  readonly revocations: RevocationStore = new MemoryRevocations();
  /** The cluster's inboxes, shared by every node: a retained push is routed like any publish. */
  readonly inbox = new MemoryInbox((channel, message) => {
    this.route(channel, message);
  });
  /**
   * @internal the inbox as a node sees it: while the cluster is down an append fails, as
   * its publish would; a retained push is refused, never retained without its envelope.
   */
  readonly nodeInbox: InboxStore = {
    append: (uid, entry, envelope, retention) =>
      this.up ? this.inbox.append(uid, entry, envelope, retention) : Promise.reject(new UnavailableError('memory cluster is down')),
    open: (uid, device, retention) => this.inbox.open(uid, device, retention),
    read: (uid, after, limit, retention) => this.inbox.read(uid, after, limit, retention),
    ack: (uid, device, upTo, retention) => this.inbox.ack(uid, device, upTo, retention),
    info: (uid, retention) => this.inbox.info(uid, retention),
  };
  /** When false, every publish fails, as with a broker outage, and so does every inbox append. */
  up = true;

  /** A broker for one more node of this cluster. */
  createBroker(nodeId: string = randomUUID()): Broker {
    return new MemoryBroker(nodeId, this);
  }

  /** @internal */
  attach(node: MemoryBroker): void {
    this.#nodes.add(node);
  }

  /** @internal the node's presence goes with it at once. */
  detach(node: MemoryBroker): void {
    this.#nodes.delete(node);
    this.#presence.dropNode(node.nodeId);
  }

  /** @internal */
  route(channel: string, message: string): void {
    for (const node of this.#nodes) {
      if (node.subscribed(channel)) node.enqueue(channel, message);
    }
  }

  /** The presence store as node `nodeId` sees it. */
  presenceFor(nodeId: string): PresenceStore {
    return this.#presence.forNode(nodeId);
  }
}

class MemoryBroker implements Broker {
  readonly nodeId: string;
  readonly peers = true;
  readonly presence: PresenceStore;
  readonly membership: MembershipStore;
  readonly revocations: RevocationStore;
  readonly inbox: InboxStore;
  readonly #cluster: MemoryCluster;
  readonly #channels = new Set<string>();
  /** channel, message, channel, message, ... */
  #queue: string[] = [];
  #onMessage: ((channel: string, message: string) => void) | undefined;

  constructor(nodeId: string, cluster: MemoryCluster) {
    this.nodeId = nodeId;
    this.#cluster = cluster;
    this.presence = cluster.presenceFor(nodeId);
    this.membership = cluster.membership;
    this.revocations = cluster.revocations;
    this.inbox = cluster.nodeInbox;
  }

  start(onMessage: (channel: string, message: string) => void): Promise<void> {
    this.#onMessage = onMessage;
    this.#cluster.attach(this);
    return Promise.resolve();
  }

  publish(channel: string, message: string): Promise<void> {
    if (!this.#cluster.up) return Promise.reject(new Error('memory cluster is down'));
    this.#cluster.route(channel, message);
    return RESOLVED;
  }

  /** In effect at once: the next publish of any node is routed here. */
  subscribe(channel: string): Promise<void> {
    this.#channels.add(channel);
    return RESOLVED;
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
    if (this.#queue.push(channel, message) === 2) setImmediate(this.#deliver);
  }

  // One immediate per turn, not per message: the primary of `--workers` relays every
  // cross-worker push through here.
  readonly #deliver = (): void => {
    const queue = this.#queue;
    this.#queue = [];
    for (let i = 0; i + 1 < queue.length; i += 2) {
      const channel = queue[i] ?? '';
      if (this.#channels.has(channel)) this.#onMessage?.(channel, queue[i + 1] ?? '');
    }
  };
}

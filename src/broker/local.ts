import { RESOLVED, type Broker, type MembershipStore, type PresenceStore, type RevocationStore } from './broker.js';
import { MemoryInbox } from './memory-inbox.js';
import { MemoryMembership, MemoryPresence, MemoryRevocations } from './memory-stores.js';

/** The id of the one node of a {@link LocalBroker}. */
const LOCAL_NODE = 'local';

/**
 * The broker of a single process, the default: a cluster of one. It has no peers, so the
 * node encodes no envelope and never publishes (a publish resolves at once, delivering
 * nothing); a subscription is in effect at once. Its stores are the in-memory ones of
 * {@link MemoryCluster}, the same code, so one process lists uids in the order and with
 * the cursors of every cluster. A presence write is a map update (and a B+ tree one when a
 * uid comes or goes) answered with one shared settled promise: nothing is allocated or
 * scheduled per login. Its inbox answers with plain values and publishes nothing.
 */
export class LocalBroker implements Broker {
  readonly nodeId: string;
  readonly peers = false;
  readonly presence: PresenceStore;
  readonly membership: MembershipStore = new MemoryMembership();
  readonly revocations: RevocationStore = new MemoryRevocations();
  /** The uids' inboxes; a retained push goes nowhere but the inbox: no other node exists. */
  readonly inbox = new MemoryInbox(() => undefined);

  constructor(nodeId: string = LOCAL_NODE) {
    this.nodeId = nodeId;
    this.presence = new MemoryPresence().forNode(nodeId);
  }

  /** Nothing arrives: no other node exists, and own publishes go nowhere. */
  start(_onMessage: (channel: string, message: string) => void): Promise<void> {
    return RESOLVED;
  }

  publish(_channel: string, _message: string): Promise<void> {
    return RESOLVED;
  }

  subscribe(_channel: string): Promise<void> {
    return RESOLVED;
  }

  unsubscribe(_channel: string): void {
    // No subscription is kept: there is nothing to deliver.
  }

  isReady(): boolean {
    return true;
  }

  close(): Promise<void> {
    this.inbox.close();
    return RESOLVED;
  }
}

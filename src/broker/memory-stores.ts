import { BiIndex } from '../core/bi-index.js';
import { joinWithin, type GroupLimits, type JoinOutcome } from '../core/limits.js';
import type { UidPage } from '../core/service.js';
import type { Group, Uid } from '../core/types.js';
import { UidIndex } from '../core/uid-order.js';
import { RESOLVED, type MembershipStore, type PresenceStore, type RevocationStore, type UidRevocation } from './broker.js';

/**
 * The in-memory stores: one set per {@link MemoryCluster} (every node of it reads the
 * same) and one per {@link LocalBroker} (a cluster of one). One code for both, so one
 * process and a cluster list uids in one order with one cursor format. Everything is
 * synchronous; the promises are only the stores' shape (writes share one settled promise).
 */

/** Presence of every node: per node, uid -> connections; the online uids in order. */
export class MemoryPresence {
  /** Per node, its uids and their connections; a node without any has no entry. */
  readonly #byNode = new Map<string, Map<Uid, number>>();
  readonly #online = new UidIndex();
  #onlineCount = 0;
  #connections = 0;

  /** The store as node `nodeId` sees it: its writes are that node's presence. */
  forNode(nodeId: string): PresenceStore {
    return {
      setLocal: (uid, connections) => {
        this.setLocal(nodeId, uid, connections);
        return RESOLVED;
      },
      connections: (uids) => Promise.resolve(uids.map((uid) => this.connectionsOf(uid))),
      holders: (uid) => Promise.resolve(this.holders(uid)),
      totals: () => Promise.resolve({ onlineUids: this.#onlineCount, connections: this.#connections }),
      connectionTotal: () => Promise.resolve(this.#connections),
      listUids: (cursor, limit) => Promise.resolve(this.page(cursor, limit)),
    };
  }

  /** Records `connections` of `uid` on `nodeId` (0: none). */
  setLocal(nodeId: string, uid: Uid, connections: number): void {
    let mine = this.#byNode.get(nodeId);
    const before = mine?.get(uid) ?? 0;
    this.#connections += connections - before;
    if (connections === 0) {
      if (before === 0 || mine === undefined) return;
      mine.delete(uid);
      if (mine.size === 0) this.#byNode.delete(nodeId);
      this.#gone(uid);
      return;
    }
    if (mine === undefined) {
      mine = new Map();
      this.#byNode.set(nodeId, mine);
    }
    mine.set(uid, connections);
    if (before === 0 && !this.#heldElsewhere(uid, nodeId)) {
      this.#online.add(uid);
      this.#onlineCount++;
    }
  }

  /** Forgets every uid of `nodeId` at once: the node left or died. */
  dropNode(nodeId: string): void {
    const mine = this.#byNode.get(nodeId);
    if (mine === undefined) return;
    this.#byNode.delete(nodeId);
    for (const [uid, n] of mine) {
      this.#connections -= n;
      this.#gone(uid);
    }
  }

  connectionsOf(uid: Uid): number {
    let n = 0;
    for (const mine of this.#byNode.values()) n += mine.get(uid) ?? 0;
    return n;
  }

  holders(uid: Uid): string[] {
    const nodes: string[] = [];
    for (const [node, mine] of this.#byNode) if (mine.has(uid)) nodes.push(node);
    return nodes;
  }

  page(cursor: string | null, limit: number): UidPage {
    return this.#online.page(cursor, limit);
  }

  /** A node stopped holding `uid`: offline if no other node holds it. */
  #gone(uid: Uid): void {
    if (this.#heldElsewhere(uid, undefined)) return;
    this.#online.delete(uid);
    this.#onlineCount--;
  }

  // A few nodes at most (one for a single process): a scan beats a count per uid to keep.
  #heldElsewhere(uid: Uid, except: string | undefined): boolean {
    for (const [node, mine] of this.#byNode) if (node !== except && mine.has(uid)) return true;
    return false;
  }
}

/** Group membership, on the one {@link BiIndex} (group -> uids) with the one join rule. */
export class MemoryMembership implements MembershipStore {
  readonly #index = new BiIndex<Group, Uid>();

  // One process, one turn: the check and the add cannot interleave with another join.
  addMember(group: Group, uid: Uid, limits: GroupLimits): Promise<JoinOutcome> {
    return Promise.resolve(joinWithin(this.#index, group, uid, limits));
  }

  removeMember(group: Group, uid: Uid): Promise<boolean> {
    return Promise.resolve(this.#index.delete(group, uid));
  }

  members(group: Group): Promise<Uid[]> {
    return Promise.resolve([...this.#index.rightsOf(group)]);
  }

  groupsOf(uid: Uid): Promise<Group[]> {
    return Promise.resolve([...this.#index.leftsOf(uid)]);
  }
}

/** Token cut-offs, pruned as they are read. */
export class MemoryRevocations implements RevocationStore {
  readonly #revoked = new Map<Uid, UidRevocation>();

  revoke(r: UidRevocation): Promise<void> {
    const known = this.#revoked.get(r.uid);
    this.#revoked.set(r.uid, {
      uid: r.uid,
      before: Math.max(r.before, known?.before ?? 0),
      until: Math.max(r.until, known?.until ?? 0),
    });
    return RESOLVED;
  }

  revocations(): Promise<UidRevocation[]> {
    const now = Date.now();
    const live: UidRevocation[] = [];
    for (const [uid, r] of this.#revoked) {
      if (r.until <= now) this.#revoked.delete(uid);
      else live.push({ ...r });
    }
    return Promise.resolve(live);
  }
}

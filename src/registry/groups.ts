import { BiIndex } from '../core/bi-index.js';
import { joinWithin, type GroupLimits, type JoinOutcome } from '../core/limits.js';
import type { Group, Uid } from '../core/types.js';

/**
 * Group membership: group -> uids and uid -> groups, on the one {@link BiIndex}. Membership
 * belongs to the uid, not to a connection, so it holds while the uid is offline and covers
 * every connection it opens later. Pure: no I/O. Empty sets are deleted at once.
 */
export class GroupIndex {
  readonly #index = new BiIndex<Group, Uid>();

  /** Number of groups with at least one member. */
  get size(): number {
    return this.#index.leftCount;
  }

  /** Adds `uid` to `group`; returns false if it was already a member. */
  add(group: Group, uid: Uid): boolean {
    return this.#index.add(group, uid);
  }

  /**
   * Adds `uid` to `group` within the caps: an existing membership is never refused, a new
   * one is when the uid or the group is full.
   */
  join(group: Group, uid: Uid, limits: GroupLimits): JoinOutcome {
    return joinWithin(this.#index, group, uid, limits);
  }

  /** Removes `uid` from `group`; returns false if it was not a member. */
  remove(group: Group, uid: Uid): boolean {
    return this.#index.delete(group, uid);
  }

  has(group: Group, uid: Uid): boolean {
    return this.#index.has(group, uid);
  }

  /** The members of `group` (live view: do not change the group while iterating). */
  members(group: Group): ReadonlySet<Uid> {
    return this.#index.rightsOf(group);
  }

  /** The groups `uid` belongs to. */
  groupsOf(uid: Uid): ReadonlySet<Group> {
    return this.#index.leftsOf(uid);
  }
}

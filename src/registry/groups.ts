import type { GroupLimits, JoinOutcome } from '../core/limits.js';
import type { Group, Uid } from '../core/types.js';

/**
 * Group membership: group -> uids and uid -> groups. Membership belongs to the uid, not
 * to a connection, so it holds while the uid is offline and covers every connection it
 * opens later. Pure: no I/O. Empty sets are deleted at once.
 */
export class GroupIndex {
  readonly #members = new Map<Group, Set<Uid>>();
  readonly #groupsOf = new Map<Uid, Set<Group>>();

  /** Number of groups with at least one member. */
  get size(): number {
    return this.#members.size;
  }

  /** Adds `uid` to `group`; returns false if it was already a member. */
  add(group: Group, uid: Uid): boolean {
    let members = this.#members.get(group);
    if (members === undefined) {
      members = new Set();
      this.#members.set(group, members);
    }
    if (members.has(uid)) return false;
    members.add(uid);
    let groups = this.#groupsOf.get(uid);
    if (groups === undefined) {
      groups = new Set();
      this.#groupsOf.set(uid, groups);
    }
    groups.add(group);
    return true;
  }

  /**
   * Adds `uid` to `group` within the caps: an existing membership is never refused, a new
   * one is when the uid or the group is full.
   */
  join(group: Group, uid: Uid, limits: GroupLimits): JoinOutcome {
    const members = this.#members.get(group);
    if (members?.has(uid) === true) return 'member';
    if ((this.#groupsOf.get(uid)?.size ?? 0) >= limits.maxGroupsPerUid) return 'uid_full';
    if ((members?.size ?? 0) >= limits.maxMembersPerGroup) return 'group_full';
    this.add(group, uid);
    return 'added';
  }

  /** Removes `uid` from `group`; returns false if it was not a member. */
  remove(group: Group, uid: Uid): boolean {
    const members = this.#members.get(group);
    if (members?.delete(uid) !== true) return false;
    if (members.size === 0) this.#members.delete(group);
    const groups = this.#groupsOf.get(uid);
    groups?.delete(group);
    if (groups?.size === 0) this.#groupsOf.delete(uid);
    return true;
  }

  has(group: Group, uid: Uid): boolean {
    return this.#members.get(group)?.has(uid) === true;
  }

  /** The members of `group` (live view: do not change the group while iterating). */
  members(group: Group): ReadonlySet<Uid> {
    return this.#members.get(group) ?? EMPTY;
  }

  /** The groups `uid` belongs to. */
  groupsOf(uid: Uid): ReadonlySet<Group> {
    return this.#groupsOf.get(uid) ?? EMPTY;
  }
}

const EMPTY: ReadonlySet<string> = new Set();

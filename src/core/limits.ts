import type { BiIndex } from './bi-index.js';
import { ProgramErrorCode, UidpushError } from './errors.js';
import type { Group, Uid } from './types.js';

/**
 * Caps on the group state clients and callers can create: membership is kept until it is
 * left, so without them one client with the `join` right could grow it without bound.
 */
export interface GroupLimits {
  /** Most groups one uid may belong to. */
  maxGroupsPerUid: number;
  /** Most members one group may have. */
  maxMembersPerGroup: number;
}

/**
 * What adding a member did: `added`, `member` (it already was; never refused), or
 * refused by a cap: `uid_full` (the uid is in `maxGroupsPerUid` groups), `group_full`
 * (the group has `maxMembersPerGroup` members). A string, so it crosses IPC as it is.
 */
export type JoinOutcome = 'added' | 'member' | 'uid_full' | 'group_full';

/**
 * The answer of a join: whether it added a member.
 *
 * @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED when a cap refused it.
 */
export function joined(outcome: JoinOutcome, group: Group, uid: Uid, limits: GroupLimits): boolean {
  if (outcome === 'uid_full') {
    throw new UidpushError(
      ProgramErrorCode.LimitExceeded,
      `uid ${uid} is already in ${String(limits.maxGroupsPerUid)} groups (maxGroupsPerUid)`,
    );
  }
  if (outcome === 'group_full') {
    throw new UidpushError(
      ProgramErrorCode.LimitExceeded,
      `group ${group} already has ${String(limits.maxMembersPerGroup)} members (maxMembersPerGroup)`,
    );
  }
  return outcome === 'added';
}

/** Whether `err` is a cap's refusal (see {@link joined}). */
export function isLimitExceeded(err: unknown): err is UidpushError {
  return err instanceof UidpushError && err.code === ProgramErrorCode.LimitExceeded;
}

/**
 * Adds `uid` to `group` in `index` (group -> uids) within the caps: an existing membership
 * is never refused, a new one is when the uid or the group is full. The one rule of every
 * in-memory membership, one process or a cluster's.
 */
export function joinWithin(index: BiIndex<Group, Uid>, group: Group, uid: Uid, limits: GroupLimits): JoinOutcome {
  const members = index.rightsOf(group);
  if (members.has(uid)) return 'member';
  if (index.leftsOf(uid).size >= limits.maxGroupsPerUid) return 'uid_full';
  if (members.size >= limits.maxMembersPerGroup) return 'group_full';
  index.add(group, uid);
  return 'added';
}

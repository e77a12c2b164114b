import type { Group } from '../core/types.js';

/** What a client may do: push to a uid, broadcast, publish to a group, join a group. */
export const RIGHTS = ['send', 'broadcast', 'publish', 'join'] as const;
/** One of {@link RIGHTS}. */
export type Right = (typeof RIGHTS)[number];

/**
 * A connection's grants. `groups` is the set of groups it may join and publish to, or
 * `any` (auth off: the seed's way).
 */
export interface Grants {
  readonly rights: ReadonlySet<Right>;
  readonly groups: ReadonlySet<Group> | 'any';
}

/** May push to a single uid. */
export function canSend(g: Grants): boolean {
  return g.rights.has('send');
}

/** May push to every connection. */
export function canBroadcast(g: Grants): boolean {
  return g.rights.has('broadcast');
}

/** May publish to `group`: the `publish` right, and the group among its groups. */
export function canPublish(g: Grants, group: Group): boolean {
  return g.rights.has('publish') && (g.groups === 'any' || g.groups.has(group));
}

/**
 * May join `group`: with a token, exactly the groups it lists; without auth, any group if
 * the `join` right is granted.
 */
export function canJoin(g: Grants, group: Group): boolean {
  return g.groups === 'any' ? g.rights.has('join') : g.groups.has(group);
}

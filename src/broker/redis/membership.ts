import type { GroupLimits, JoinOutcome } from '../../core/limits.js';
import type { Group, Uid } from '../../core/types.js';
import type { MembershipStore } from '../broker.js';
import type { RedisLike } from './client.js';
import type { RedisKeys } from './keys.js';

/**
 * Adds ARGV[1] to the set KEYS[1] unless it has ARGV[2] members already: 1 added, 0 was
 * a member, -1 full. Atomic in Redis, so no number of nodes joining at once takes the set
 * past its cap. One key per script: a uid's groups and a group's members live in
 * different slots of a Redis Cluster.
 */
const CAPPED_SADD = `
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

/** Group membership in two Redis sets per pair: a group's members and a uid's groups. */
export class RedisMembership implements MembershipStore {
  readonly #redis: RedisLike;
  readonly #key: RedisKeys;

  constructor(redis: RedisLike, key: RedisKeys) {
    this.#redis = redis;
    this.#key = key;
  }

  // The uid's set first, then the group's; a join the group refuses gives its place in
  // the uid's set back. Each set's cap holds exactly; meanwhile (one round trip) a
  // refused join may hold a slot of the uid's set, so a concurrent join of the same
  // uid near its cap may be refused too.
  async addMember(group: Group, uid: Uid, limits: GroupLimits): Promise<JoinOutcome> {
    const onUid = await this.#capped(this.#key.groupsOf(uid), group, limits.maxGroupsPerUid);
    if (onUid === -1) {
      // Already a member is never refused, even by a full uid.
      return (await this.#redis.sIsMember(this.#key.group(group), uid)) === 1 ? 'member' : 'uid_full';
    }
    const onGroup = await this.#capped(this.#key.group(group), uid, limits.maxMembersPerGroup);
    if (onGroup === -1) {
      if (onUid === 1) await this.#redis.sRem(this.#key.groupsOf(uid), group);
      return 'group_full';
    }
    return onGroup === 1 ? 'added' : 'member';
  }

  async removeMember(group: Group, uid: Uid): Promise<boolean> {
    const [removed] = await Promise.all([this.#redis.sRem(this.#key.group(group), uid), this.#redis.sRem(this.#key.groupsOf(uid), group)]);
    return removed === 1;
  }

  members(group: Group): Promise<Uid[]> {
    return this.#redis.sMembers(this.#key.group(group));
  }

  groupsOf(uid: Uid): Promise<Group[]> {
    return this.#redis.sMembers(this.#key.groupsOf(uid));
  }

  async #capped(key: string, member: string, max: number): Promise<number> {
    return Number(await this.#redis.eval(CAPPED_SADD, { keys: [key], arguments: [member, String(max)] }));
  }
}

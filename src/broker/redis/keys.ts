import type { Group, Uid } from '../../core/types.js';

/**
 * Every key and channel name of one cluster, under its namespace (so several clusters can
 * share one Redis). One key per concept: in a Redis Cluster each may live in its own slot,
 * so no command names two of them.
 */
export function redisKeys(ns: string) {
  return {
    /** The set of node ids that have announced themselves. */
    nodes: `${ns}:nodes`,
    /** A node's liveness: exists while it lives; its value is the node's connection total. */
    node: (node: string) => `${ns}:node:${node}`,
    /** A node's presence: a hash uid -> connections. */
    presence: (node: string) => `${ns}:presence:${node}`,
    /** The same uids in a sorted set of equal scores: byte order, for paging by range. */
    uids: (node: string) => `${ns}:uids:${node}`,
    group: (group: Group) => `${ns}:group:${group}`,
    groupsOf: (uid: Uid) => `${ns}:groups-of:${uid}`,
    /** Token cut-offs: one hash, uid -> `<before>:<until>` (ms); few fields, read whole. */
    revoked: `${ns}:revoked`,
    channel: (name: string) => `${ns}|${name}`,
  };
}

/** The names of one namespace. */
export type RedisKeys = ReturnType<typeof redisKeys>;

import { hashTag } from '../envelope.js';
import type { Group, Uid } from '../../core/types.js';

/**
 * Every key and channel name of one cluster, under its namespace (so several clusters can
 * share one Redis). One key per concept: in a Redis Cluster each may live in its own slot,
 * so no command names two of them; except a uid's inbox keys, which all carry the uid's
 * hash tag `{<uid>}` as its channel does (`uidpush:u:{<uid>}`, envelope.ts), so one script
 * appends to them and publishes on the channel in one slot. The namespace must hold no `{`
 * or `}`: the first braces of a name pick its slot (createRedisBroker refuses them).
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
    /**
     * A uid's inbox (docs/delivery.md), five kinds of key in the uid's slot:
     * - `stream`: the retained entries, a Redis Stream with entry id `<offset>-0` and fields
     *   `d` (the data's JSON text), `t` (ms, Redis's clock), `f` (the sender's uid; absent
     *   for `from: null`, so null and any string stay apart) and `k` (the `latest` key; absent
     *   for durable pushes);
     * - `meta`: a hash `e` (epoch), `s` (top offset), `lo` (lowest offset retained: every
     *   offset below it was trimmed by count or age);
     * - `devices`: a hash device -> `<cursor>:<lastSeen ms>`;
     * - `latest`: a hash latest key -> the offset of its newest entry;
     * - `idempotency(key)`: a string `<offset>:<epoch>`, the first push with that key.
     */
    inbox: (uid: Uid) => {
      const base = `${ns}:inbox:{${hashTag(uid)}}`;
      return {
        stream: `${base}:s`,
        meta: `${base}:m`,
        devices: `${base}:d`,
        latest: `${base}:l`,
        idempotency: (key: string) => `${base}:i:${key}`,
      };
    },
  };
}

/** The names of one namespace. */
export type RedisKeys = ReturnType<typeof redisKeys>;

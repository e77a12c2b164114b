import type { BroadcastResult, MaybePromise, PushResult } from '../core/service.js';
import type { Data, Group, Uid } from '../core/types.js';
import type { Hub, Recipient } from './hub.js';

/**
 * Where a client's push goes. Alone, a node delivers through its hub; in a cluster, the
 * cluster node publishes to the others first, then delivers through the same hub. Results
 * may come later (a cluster asks its store); delivery itself starts at the call. A cluster
 * whose broker is unavailable answers with `degraded: true` (delivered here only) or
 * rejects with an UnavailableError (delivered to no one).
 */
export interface Router {
  /**
   * @param wholeCluster - answer for the whole cluster (a store lookup in a cluster); when
   *   false, the answer counts this node's deliveries only and costs nothing extra. The
   *   seed protocol, which sends no acknowledgement, never asks.
   */
  sendToUid(uid: Uid, data: Data, from: Uid | null, wholeCluster: boolean): MaybePromise<PushResult>;
  broadcast(data: Data, from: Uid | null, wholeCluster: boolean): MaybePromise<BroadcastResult>;
  publish(group: Group, data: Data, from: Uid | null, wholeCluster: boolean): MaybePromise<PushResult>;
  join(group: Group, uid: Uid): MaybePromise<boolean>;
  leave(group: Group, uid: Uid): MaybePromise<boolean>;
}

/** The router of a node alone: its hub, answering at once. */
export function localRouter<C extends Recipient>(hub: Hub<C>): Router {
  return {
    sendToUid: (uid, data, from) => {
      const connections = hub.sendToUid(uid, data, from);
      return { online: connections > 0 ? 1 : 0, connections };
    },
    broadcast: (data, from) => ({ connections: hub.broadcast(data, from) }),
    publish: (group, data, from) => hub.publish(group, data, from),
    join: (group, uid) => hub.join(group, uid),
    leave: (group, uid) => hub.leave(group, uid),
  };
}


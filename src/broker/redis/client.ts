import { createClient, createCluster, createSentinel } from '@redis/client';

/**
 * The commands the broker uses, shared by node-redis's standalone, cluster and sentinel
 * clients; one of the three is made from the URL.
 */
export interface RedisLike {
  readonly isReady: boolean;
  readonly isOpen: boolean;
  on(event: 'error' | 'ready', listener: (err?: unknown) => void): unknown;
  connect(): Promise<unknown>;
  destroy(): unknown;
  duplicate(): RedisLike;
  sPublish(channel: string, message: string): Promise<unknown>;
  sSubscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  sUnsubscribe(channel: string): Promise<unknown>;
  set(key: string, value: string, options: { expiration: { type: 'PX'; value: number } }): Promise<unknown>;
  sAdd(key: string, members: string | string[]): Promise<number>;
  sRem(key: string, members: string | string[]): Promise<number>;
  pExpire(key: string, ms: number, mode?: 'NX' | 'GT'): Promise<number>;
  hGet(key: string, field: string): Promise<string | null>;
  hGetAll(key: string): Promise<Record<string, string>>;
  hSet(key: string, fields: Record<string, string>): Promise<unknown>;
  hDel(key: string, fields: string[]): Promise<unknown>;
  del(key: string): Promise<unknown>;
  exists(key: string): Promise<number>;
  sMembers(key: string): Promise<string[]>;
  sIsMember(key: string, member: string): Promise<number>;
  hmGet(key: string, fields: string[]): Promise<(string | null)[]>;
  get(key: string): Promise<string | null>;
  hKeys(key: string): Promise<string[]>;
  zAdd(key: string, members: { score: number; value: string }[]): Promise<unknown>;
  zRem(key: string, members: string[]): Promise<unknown>;
  zRange(key: string, min: string, max: string, options: { BY: 'LEX'; LIMIT: { offset: number; count: number } }): Promise<string[]>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

/**
 * Builds the client for a URL:
 * - `redis://[user:pass@]host:port[/db]` or `rediss://...`: one Redis;
 * - `redis+cluster://host:port,host:port`: a Redis Cluster, from its seed nodes;
 * - `redis+sentinel://host:port,host:port/<master name>`: the master Sentinel names.
 */
export function clientFor(url: string, reconnectStrategy: (retries: number) => number): RedisLike {
  const cluster = /^redis\+cluster:\/\/(.+)$/.exec(url);
  if (cluster?.[1] !== undefined) {
    const rootNodes = cluster[1].split(',').map((hostPort) => ({ url: `redis://${hostPort.replace(/\/$/, '')}` }));
    return createCluster({ rootNodes, defaults: { socket: { reconnectStrategy } } });
  }
  const sentinel = /^redis\+sentinel:\/\/([^/]+)\/(.+)$/.exec(url);
  if (sentinel?.[1] !== undefined && sentinel[2] !== undefined) {
    const sentinelRootNodes = sentinel[1].split(',').map((hostPort) => {
      const [host = '127.0.0.1', port = '26379'] = hostPort.split(':');
      return { host, port: Number(port) };
    });
    return createSentinel({
      name: sentinel[2],
      sentinelRootNodes,
      // Without a reserved client, node-redis leases a pooled master client per command
      // asynchronously, and commands sent in one turn can reach Redis out of order: pushes
      // to one uid would arrive reordered (the contract suite's burst case).
      reserveClient: true,
      nodeClientOptions: { socket: { reconnectStrategy } },
    });
  }
  // Fail fast while Redis is away instead of queueing stale pushes for later. No
  // per-command timeout: node-redis arms an AbortSignal.timeout() for each command, which
  // measured as about half of a node's CPU per cross-node push (bench/README.md); a lost
  // connection still fails every pending command, and a dead peer is found by TCP keepalive.
  return createClient({
    url,
    disableOfflineQueue: true,
    commandOptions: { timeout: 0 },
    socket: { reconnectStrategy },
  });
}

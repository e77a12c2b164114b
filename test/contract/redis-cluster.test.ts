import { afterAll, beforeAll } from 'vitest';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-servers.js';
import { redisContract } from './redis-contract.js';

// A Redis Cluster of 3 masters that this file starts on free ports (redis-server and
// redis-cli must be installed, as .ci/run checks): sharded channels and keys spread
// over the masters' slots.
let redis: RedisClusterHandle | undefined;
beforeAll(async () => {
  redis = await startRedisCluster(3);
}, 30_000);
afterAll(() => {
  redis?.stop();
});

redisContract('redis cluster (3 masters), 3 nodes', () => redis?.url ?? '');

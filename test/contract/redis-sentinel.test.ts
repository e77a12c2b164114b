import { afterAll, beforeAll } from 'vitest';
import { startRedisSentinel, type RedisSentinelHandle } from '../helpers/redis-servers.js';
import { redisContract } from './redis-contract.js';

// A Redis master, its replica and a Sentinel that this file starts on free ports; the
// nodes find the master through the Sentinel.
let redis: RedisSentinelHandle | undefined;
beforeAll(async () => {
  redis = await startRedisSentinel();
}, 30_000);
afterAll(() => {
  redis?.stop();
});

redisContract('redis through sentinel, 3 nodes', () => redis?.url ?? '');

import { dropNamespace } from '../helpers/redis-servers.js';
import { redisContract } from './redis-contract.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere). .ci/run starts one when
// none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const drop = (ns: string): Promise<void> => dropNamespace(url, ns);

redisContract('redis, 3 nodes', () => url, drop);

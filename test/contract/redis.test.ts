import { createClient } from '@redis/client';
import { redisContract } from './redis-contract.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere). .ci/run starts one when
// none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Deletes what a test cluster left in Redis (group sets have no expiry). */
async function drop(ns: string): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    for await (const keys of client.scanIterator({ MATCH: `${ns}:*`, COUNT: 500 })) {
      if (keys.length > 0) await client.del(keys);
    }
  } finally {
    client.destroy();
  }
}

redisContract('redis, 3 nodes', () => url, drop);

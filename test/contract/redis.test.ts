import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterAll } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { brokerContract } from './broker-contract.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere). .ci/run starts one when
// none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let namespace = `uidpush-test-${randomUUID()}`;

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

brokerContract('redis, 3 nodes', {
  nodes: 3,
  broker: () => createRedisBroker(url, silent, { namespace, presenceTtl: 5000 }),
  reset: async () => {
    // A fresh namespace per test: a new, empty cluster on the same Redis.
    await drop(namespace);
    namespace = `uidpush-test-${randomUUID()}`;
  },
});

afterAll(async () => {
  await drop(namespace);
});

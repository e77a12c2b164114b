import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { createRedisBroker } from '../../src/index.js';
import { silentLogger } from '../../src/core/types.js';
import { dropNamespace } from '../helpers/redis-servers.js';
import { brokerLevelContract } from './broker-level.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere), as redis.test.ts: .ci/run
// starts one when none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * One try, no reconnecting: with Redis absent each test fails at once with its error,
 * not after the hook timeout with brokers still reconnecting.
 */
async function reachable(): Promise<void> {
  const probe = createClient({ url, socket: { reconnectStrategy: false } });
  probe.on('error', () => undefined);
  await probe.connect();
  probe.destroy();
}

// Each call a new namespace: a new, empty cluster on the same Redis, dropped after.
brokerLevelContract('redis', async (nodes) => {
  await reachable();
  const namespace = `uidpush-test-${randomUUID()}`;
  return {
    brokers: Array.from({ length: nodes }, () => createRedisBroker(url, silentLogger, { namespace, presenceTtl: 5000 })),
    close: () => dropNamespace(url, namespace),
  };
});

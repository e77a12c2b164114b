import { randomUUID } from 'node:crypto';
import { createRedisBroker } from '../../src/index.js';
import { silentLogger } from '../../src/core/types.js';
import { dropNamespace } from '../helpers/redis-servers.js';
import { brokerLevelContract } from './broker-level.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere), as redis.test.ts: .ci/run
// starts one when none answers; without Redis these tests fail, they never skip.
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// Each call a new namespace: a new, empty cluster on the same Redis, dropped after.
brokerLevelContract('redis', (nodes) => {
  const namespace = `uidpush-test-${randomUUID()}`;
  return {
    brokers: Array.from({ length: nodes }, () => createRedisBroker(url, silentLogger, { namespace, presenceTtl: 5000 })),
    close: () => dropNamespace(url, namespace),
  };
});

import { randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { silentLogger } from '../../src/core/types.js';
import { brokerContract } from './broker-contract.js';

/**
 * The broker contract on the Redis at `url()` (read when a test starts its nodes), three
 * nodes, each test in a namespace of its own: a new, empty cluster on the same Redis.
 * `drop` deletes what a namespace left, for a Redis the suite does not throw away.
 */
export function redisContract(name: string, url: () => string, drop?: (namespace: string) => Promise<void>): void {
  const fresh = (): string => `uidpush-test-${randomUUID()}`;
  let namespace = fresh();
  brokerContract(name, {
    nodes: 3,
    broker: () => createRedisBroker(url(), silentLogger, { namespace, presenceTtl: 5000 }),
    reset: async () => {
      await drop?.(namespace);
      namespace = fresh();
    },
  });
  afterAll(async () => {
    await drop?.(namespace);
  });
}

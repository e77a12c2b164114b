import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { startRedisSentinel } from '../helpers/redis-servers.js';
import { brokerContract } from './broker-contract.js';

// A Redis master and a Sentinel that this file starts on free ports; the nodes find the
// master through the Sentinel.
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let sentinel: { url: string; stop: () => void } | undefined;
let namespace = `uidpush-test-${randomUUID()}`;

beforeAll(async () => {
  sentinel = await startRedisSentinel();
}, 30_000);
afterAll(() => {
  sentinel?.stop();
});

brokerContract('redis through sentinel, 3 nodes', {
  nodes: 3,
  broker: () => createRedisBroker(sentinel?.url ?? '', silent, { namespace, presenceTtl: 5000 }),
  reset: () => {
    namespace = `uidpush-test-${randomUUID()}`;
  },
});

import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { startRedisCluster } from '../helpers/redis-servers.js';
import { brokerContract } from './broker-contract.js';

// A Redis Cluster of 3 masters that this file starts on free ports (redis-server and
// redis-cli must be installed, as .ci/run checks): sharded channels and keys spread
// over the masters' slots.
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let cluster: { url: string; stop: () => void } | undefined;
let namespace = `uidpush-test-${randomUUID()}`;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 30_000);
afterAll(() => {
  cluster?.stop();
});

brokerContract('redis cluster (3 masters), 3 nodes', {
  nodes: 3,
  broker: () => createRedisBroker(cluster?.url ?? '', silent, { namespace, presenceTtl: 5000 }),
  reset: () => {
    namespace = `uidpush-test-${randomUUID()}`;
  },
});

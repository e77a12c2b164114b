import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { join } from 'node:path';
import { MemoryCluster, servePrimary } from '../../src/broker/ipc.js';
import { vi } from 'vitest';
import { brokerContract, CONTRACT_LIMITS, type ContractNode } from './broker-contract.js';
import { silentLogger } from '../../src/core/types.js';

// Each test forks three workers that load the sources through tsx: seconds on a loaded
// 2-core box, so the hooks get more than the suite's default 20 s.
vi.setConfig({ hookTimeout: 60_000, testTimeout: 60_000 });

// node:cluster workers relaying through this process as their primary, with the
// primary code of `serve --workers N` (servePrimary over one MemoryCluster). Which
// worker a client reaches through the shared port is the OS's and node:cluster's
// choice (test/integration/workers.test.ts covers that); here each worker also has
// its own address, so a test puts clients and API calls on the worker it means.
cluster.setupPrimary({
  exec: join(import.meta.dirname, '../helpers/cluster-worker.ts'),
  execArgv: ['--import', 'tsx'],
  silent: false,
});
// Distinct loopback addresses per test as well: a worker of the previous test may
// still be closing its handle on the primary's side.
let round = 0;

async function startWorker(host: string, shared: MemoryCluster, extra: Record<string, unknown>): Promise<ContractNode> {
  const worker: Worker = cluster.fork({ UIDPUSH_TEST_HOST: host, UIDPUSH_TEST_OPTIONS: JSON.stringify({ ...CONTRACT_LIMITS, ...extra }) });
  const stopRelay = servePrimary(shared, worker, silentLogger);
  const exited = once(worker, 'exit');
  const ready = await Promise.race([
    new Promise<{ url: string; api: string }>((resolve) => {
      const onMessage = (msg: { harness?: string; url: string; api: string }): void => {
        if (msg.harness !== 'listening') return;
        worker.off('message', onMessage);
        resolve(msg);
      };
      worker.on('message', onMessage);
    }),
    exited.then(() => {
      throw new Error(`worker on ${host} exited before listening`);
    }),
  ]);
  return {
    url: ready.url,
    api: ready.api,
    offline: (uid) =>
      new Promise((resolve) => {
        const onMessage = (msg: { harness?: string; uid?: string }): void => {
          if (msg.harness !== 'offline' || msg.uid !== uid) return;
          worker.off('message', onMessage);
          resolve();
        };
        worker.on('message', onMessage);
      }),
    stop: async () => {
      worker.kill('SIGKILL');
      await exited;
      await stopRelay();
    },
  };
}

brokerContract('node:cluster workers, 3 nodes', {
  nodes: 3,
  start: async (extra = {}) => {
    const shared = new MemoryCluster();
    round = (round % 200) + 1;
    return Promise.all([1, 2, 3].map((n) => startWorker(`127.1.${round}.${n}`, shared, extra)));
  },
});

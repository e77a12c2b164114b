import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { connect, eventually, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-servers.js';

// A Redis Cluster of 3 masters with a replica each, started here on free ports: when the
// master holding a uid's channel dies, its replica takes over and pushes flow again
// without restarting uidpush.
const silent = { debug() {}, info() {}, warn() {}, error() {} };
let redis: RedisClusterHandle | undefined;
const nodes: Started[] = [];
const clients: TestClient[] = [];

beforeAll(async () => {
  redis = await startRedisCluster(3, 1);
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(nodes.map((n) => n.stop()));
  redis?.stop();
});

async function push(node: Started, uid: string, data: string): Promise<void> {
  await fetch(`http://127.0.0.1:${node.server.address().api?.port ?? 0}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uid, data }),
  });
}

describe('a Redis Cluster failover', { timeout: 60_000 }, () => {
  it('resumes cross-node delivery once the replica of the dead master takes over', async () => {
    const namespace = `uidpush-failover-${randomUUID()}`;
    for (let i = 0; i < 2; i++) {
      nodes.push(await startServer({ broker: createRedisBroker(redis?.url ?? '', silent, { namespace, presenceTtl: 5000 }) }));
    }
    const [a, b] = nodes;
    if (a === undefined || b === undefined) throw new Error('no nodes');
    const target = await connect(a.url);
    clients.push(target);
    await target.login('fo');
    // Subscriptions are asynchronous: push until one arrives.
    await eventually(async () => {
      await push(b, 'fo', 'before');
      expect(await target.next(200)).toBe('before');
    });

    // The master that holds the uid's sharded channel (and so its subscription).
    redis?.killMasterOf(`${namespace}|uidpush:u:fo`);
    await redis?.waitHealthy();

    let n = 0;
    await eventually(async () => {
      n++;
      await push(b, 'fo', `after ${String(n)}`);
      expect(await target.next(300)).toMatch(/^after \d+$/);
    }, 30_000);
  });
});

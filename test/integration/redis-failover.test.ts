import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisBroker } from '../../src/index.js';
import { connect, eventually, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { startRedisCluster, startRedisSentinel } from '../helpers/redis-servers.js';
import { silentLogger } from '../../src/core/types.js';
import { channel } from '../../src/broker/envelope.js';

// Redis deployments with a replica, started here on free ports: when the master that
// carries a uid's channel dies, the replica takes over and pushes flow again without
// restarting uidpush.
const nodes: Started[] = [];
const clients: TestClient[] = [];
const stops: (() => void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  for (const stop of stops.splice(0)) stop();
});

async function push(node: Started, uid: string, data: string): Promise<void> {
  await fetch(`http://127.0.0.1:${node.server.address().api?.port ?? 0}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uid, data }),
  });
}

/** Two nodes on `url`; a client of node A receives from node B before and after `fail()`. */
async function deliversAcross(url: string, namespace: string, fail: () => Promise<void>): Promise<void> {
  for (let i = 0; i < 2; i++)
    nodes.push(await startServer({ broker: createRedisBroker(url, silentLogger, { namespace, presenceTtl: 5000 }) }));
  const [a, b] = nodes;
  if (a === undefined || b === undefined) throw new Error('no nodes');
  const target = await connect(a.url);
  clients.push(target);
  await target.login('fo');
  // Subscribing is asynchronous: push until one arrives.
  await eventually(async () => {
    await push(b, 'fo', 'before');
    expect(await target.next(200)).toBe('before');
  });
  await fail();
  let n = 0;
  await eventually(async () => {
    n++;
    await push(b, 'fo', `after ${String(n)}`);
    expect(await target.next(300)).toMatch(/^after \d+$/);
  }, 30_000);
}

describe('a Redis failover', { timeout: 90_000 }, () => {
  it('Redis Cluster: cross-node delivery resumes once the replica of the dead master takes over', async () => {
    const redis = await startRedisCluster(3, 1);
    stops.push(() => {
      redis.stop();
    });
    const namespace = `uidpush-failover-${randomUUID()}`;
    await deliversAcross(redis.url, namespace, async () => {
      // The master that holds the uid's sharded channel, and so its subscription (and inbox).
      redis.killMasterOf(`${namespace}|${channel.uid('fo')}`);
      await redis.waitHealthy();
    });
  });

  it('Sentinel: cross-node delivery resumes once Sentinel promotes the replica', async () => {
    const redis = await startRedisSentinel();
    stops.push(() => {
      redis.stop();
    });
    await deliversAcross(redis.url, `uidpush-failover-${randomUUID()}`, () => redis.failover());
  });
});

describe('presence Redis lost without a disconnect', () => {
  it('is written again by its node within a heartbeat', async () => {
    // The real Redis (REDIS_URL), as in the contract suite: keys deleted by hand stand in
    // for writes a failover dropped.
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const namespace = `uidpush-lost-${randomUUID()}`;
    const brokerA = createRedisBroker(url, silentLogger, { namespace, presenceTtl: 1500 });
    nodes.push(await startServer({ broker: brokerA }));
    nodes.push(await startServer({ broker: createRedisBroker(url, silentLogger, { namespace, presenceTtl: 1500 }) }));
    const [a, b] = nodes;
    if (a === undefined || b === undefined) throw new Error('no nodes');
    const client = await connect(a.url);
    clients.push(client);
    await client.login('kept');
    const bApi = `http://127.0.0.1:${b.server.address().api?.port ?? 0}`;
    const seen = async (): Promise<void> => {
      expect(await (await fetch(`${bApi}/v1/users/kept`)).json()).toMatchObject({ online: true });
      expect(await (await fetch(`${bApi}/v1/users`)).json()).toMatchObject({ uids: ['kept'] });
    };
    await eventually(seen);

    const raw = createClient({ url });
    await raw.connect();
    try {
      await raw.del([`${namespace}:presence:${brokerA.nodeId}`, `${namespace}:uids:${brokerA.nodeId}`]);
      expect(await (await fetch(`${bApi}/v1/users/kept`)).json()).toMatchObject({ online: false });
      await eventually(seen, 5000);
    } finally {
      for await (const keys of raw.scanIterator({ MATCH: `${namespace}:*` })) if (keys.length > 0) await raw.del(keys);
      raw.destroy();
    }
  });
});

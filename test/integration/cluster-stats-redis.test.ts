import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceStats } from '../../src/index.js';
import { connect, eventually, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { dropNamespace } from '../helpers/redis-servers.js';
import { freshCall, freshJson, metricValue } from '../helpers/scrape.js';

// The real Redis on 127.0.0.1:6379 (REDIS_URL to point elsewhere); without it these fail.
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const started: Started[] = [];
const clients: TestClient[] = [];
const namespaces: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(started.splice(0).map((s) => s.stop()));
  await Promise.all(namespaces.splice(0).map((ns) => dropNamespace(REDIS_URL, ns)));
});

interface Node {
  ws: string;
  api: string;
}

/** Two servers on one Redis, in a namespace of their own: a cluster no other test meets. */
async function twoNodes(): Promise<[Node, Node]> {
  const namespace = `it-stats-${randomUUID()}`;
  namespaces.push(namespace);
  const nodes = await Promise.all(
    [0, 1].map(async () => {
      const s = await startServer({ redis: REDIS_URL, redisNamespace: namespace, presenceTtl: 2000 });
      started.push(s);
      const api = s.server.address().api;
      return { ws: s.url, api: `http://127.0.0.1:${String(api?.port ?? 0)}` };
    }),
  );
  return nodes as [Node, Node];
}

async function login(n: Node, uid: string): Promise<TestClient> {
  const c = await connect(n.ws);
  clients.push(c);
  return c.login(uid);
}

const stats = (n: Node): Promise<ServiceStats> => freshJson<ServiceStats>(`${n.api}/v1/stats`);
const offline = async (n: Node): Promise<number> =>
  metricValue((await freshCall(`${n.api}/metrics`)).text, 'uidpush_dropped_total', { reason: 'offline' });

describe('two uidpush nodes on one Redis: stats and metrics', { timeout: 30_000 }, () => {
  it('count a push as offline once, on the node that took it, and only when no node holds the uid', async () => {
    const [a, b] = await twoNodes();
    const alice = await login(a, 'alice');
    const bob = await login(b, 'bob');
    await eventually(async () => {
      expect(await freshJson(`${b.api}/v1/users/alice`)).toMatchObject({ online: true });
    });
    // Delivered on A, though B took them: no node counts them offline.
    expect(await freshJson(`${b.api}/v1/push`, 'POST', { uid: 'alice', data: 'via B api' })).toEqual({ online: 1, connections: 1 });
    expect(await alice.next()).toBe('via B api');
    bob.send('alice:via a client on B');
    expect(await alice.next()).toBe('via a client on B');
    expect([await offline(a), await offline(b)]).toEqual([0, 0]);

    // A uid no node holds: one drop in the cluster, on B, whichever way B took it.
    expect(await freshJson(`${b.api}/v1/push`, 'POST', { uid: 'nobody', data: 'x' })).toEqual({ online: 0, connections: 0 });
    expect([await offline(a), await offline(b)]).toEqual([0, 1]);
    // A client's push asks for no answer, so B reads presence after it; the store answers
    // B's reads in order, so once this one is counted, the earlier one to alice was read too.
    bob.send('nobody:y');
    await eventually(async () => {
      expect(await offline(b)).toBe(2);
    });
    expect([await offline(a), await offline(b)]).toEqual([0, 2]);
    expect((await stats(a)).dropped.offline).toBe(0);
    expect((await stats(b)).dropped.offline).toBe(2);
  });

  it("answer online uids and connections for the cluster in /v1/stats, and this node's in local* and /metrics", async () => {
    const [a, b] = await twoNodes();
    await login(a, 'alice');
    await login(a, 'alice');
    await login(b, 'alice');
    await login(b, 'bob');
    for (const n of [a, b]) {
      await eventually(async () => {
        expect(await stats(n)).toMatchObject({ onlineUids: 2, connections: 4 });
      });
    }
    expect(await stats(a)).toMatchObject({ localOnlineUids: 1, localConnections: 2 });
    expect(await stats(b)).toMatchObject({ localOnlineUids: 2, localConnections: 2 });
    expect((await stats(a)).workers).toBeUndefined();
    const [ma, mb] = [(await freshCall(`${a.api}/metrics`)).text, (await freshCall(`${b.api}/metrics`)).text];
    expect([metricValue(ma, 'uidpush_online_uids'), metricValue(ma, 'uidpush_connections')]).toEqual([1, 2]);
    expect([metricValue(mb, 'uidpush_online_uids'), metricValue(mb, 'uidpush_connections')]).toEqual([2, 2]);
  });
});

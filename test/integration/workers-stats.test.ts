import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServiceStats } from '../../src/index.js';
import { connect, eventually, type TestClient } from '../helpers/clients.js';
import { dropNamespace } from '../helpers/redis-servers.js';
import { freshCall, freshJson, metricValue } from '../helpers/scrape.js';
import { workersBed, type Workers } from '../helpers/workers.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const bed = workersBed();
const clients: TestClient[] = [];
const namespaces: string[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  bed.cleanup();
  await Promise.all(namespaces.splice(0).map((ns) => dropNamespace(REDIS_URL, ns)));
});

/**
 * Logs `uid` in again until it has a connection on each worker: the sum of the workers'
 * own uid counts then exceeds the group's distinct count by one. Returns how many times.
 */
async function onBothWorkers(w: Workers, uid: string): Promise<number> {
  for (let n = 1; n <= 8; n++) {
    await login(w.ws, uid);
    const s = await stats(w);
    const perWorker = (s.workers ?? []).reduce((a, x) => a + x.onlineUids, 0);
    if (perWorker === s.localOnlineUids + 1) return n;
  }
  throw new Error(`${uid} never reached both workers`);
}

async function login(ws: string, uid: string): Promise<TestClient> {
  const c = await connect(ws);
  clients.push(c);
  return c.login(uid);
}

const stats = (w: Workers): Promise<ServiceStats> => freshJson<ServiceStats>(`${w.api}/v1/stats`);
const metrics = async (w: Workers): Promise<string> => (await freshCall(`${w.api}/metrics`)).text;

type Figure =
  | 'onlineUids'
  | 'connections'
  | 'localOnlineUids'
  | 'localConnections'
  | 'messagesOut'
  | 'offline'
  | 'metricOnlineUids'
  | 'metricConnections'
  | 'metricMessagesOut'
  | 'metricOffline';

/** What one scrape of each says, side by side. */
async function figures(w: Workers): Promise<Record<Figure, number>> {
  const [s, m] = await Promise.all([stats(w), metrics(w)]);
  return {
    onlineUids: s.onlineUids,
    connections: s.connections,
    localOnlineUids: s.localOnlineUids,
    localConnections: s.localConnections,
    messagesOut: s.messagesOut,
    offline: s.dropped.offline,
    metricOnlineUids: metricValue(m, 'uidpush_online_uids'),
    metricConnections: metricValue(m, 'uidpush_connections'),
    metricMessagesOut: metricValue(m, 'uidpush_messages_out_total'),
    metricOffline: metricValue(m, 'uidpush_dropped_total', { reason: 'offline' }),
  };
}

describe('uidpush serve --workers 2: stats and metrics', { timeout: 60_000 }, () => {
  it('answer for every worker together, whichever takes the request, a uid on two workers counted once', async () => {
    const w = await bed.start(2);
    // node:cluster hands connections out round-robin: a few logins reach both workers.
    const users: TestClient[] = [];
    for (let i = 0; i < 6; i++) users.push(await login(w.ws, `u${i}`));
    const sockets = 6 + (await onBothWorkers(w, 'both'));
    const s = await stats(w);
    expect(s.workers?.map((x) => x.pid).sort()).toEqual([...w.pids].sort());
    for (const x of s.workers ?? []) expect(x.connections).toBeGreaterThan(0);
    expect((s.workers ?? []).reduce((a, x) => a + x.onlineUids, 0)).toBe(8);
    expect((s.workers ?? []).reduce((a, x) => a + x.connections, 0)).toBe(sockets);

    // Each scrape on a new connection, so they land on both workers: the same answer each time.
    const first = await figures(w);
    expect(first).toMatchObject({
      onlineUids: 7,
      connections: sockets,
      localOnlineUids: 7,
      localConnections: sockets,
      metricOnlineUids: 7,
      metricConnections: sockets,
      offline: 0,
      metricOffline: 0,
    });
    expect(first.metricMessagesOut).toBe(first.messagesOut);
    for (let i = 0; i < 5; i++) expect(await figures(w)).toEqual(first);
  });

  it('count K pushes as K frames out and K offline drops, never going down between scrapes', async () => {
    const w = await bed.start(2);
    const users: TestClient[] = [];
    for (let i = 0; i < 4; i++) users.push(await login(w.ws, `p${i}`));
    const base = await figures(w);
    let last = base;
    const K = 6;
    for (let k = 1; k <= K; k++) {
      // Each push on a new API connection: the pushes are taken by both workers.
      const uid = `p${String(k % 4)}`;
      expect(await freshJson(`${w.api}/v1/push`, 'POST', { uid, data: `m${String(k)}` })).toEqual({ online: 1, connections: 1 });
      expect(await users[k % 4]?.next()).toBe(`m${String(k)}`);
      expect(await freshJson(`${w.api}/v1/push`, 'POST', { uid: 'nobody', data: 'x' })).toEqual({ online: 0, connections: 0 });
      const now = await figures(w);
      for (const key of ['messagesOut', 'metricMessagesOut', 'offline', 'metricOffline'] as const) {
        expect(now[key]).toBeGreaterThanOrEqual(last[key]);
      }
      last = now;
    }
    expect(last.messagesOut - base.messagesOut).toBe(K);
    expect(last.metricMessagesOut - base.metricMessagesOut).toBe(K);
    expect(last).toMatchObject({ offline: K, metricOffline: K });
    // A client's push to a uid on the other worker is no offline drop; one to a uid nowhere is.
    users[0]?.send('p1:across');
    expect(await users[1]?.next()).toBe('across');
    users[0]?.send('nobody:seed');
    await eventually(async () => {
      expect(await figures(w)).toMatchObject({ offline: K + 1, metricOffline: K + 1 });
    });
    expect(await figures(w)).toMatchObject({ offline: K + 1, metricOffline: K + 1 });
  });

  it("with --redis too: presence from Redis for the cluster, the group's own in local* and /metrics", async () => {
    const namespace = `it-workers-${randomUUID()}`;
    namespaces.push(namespace);
    const w = await bed.start(2, { UIDPUSH_REDIS: REDIS_URL, UIDPUSH_REDIS_NAMESPACE: namespace });
    for (let i = 0; i < 4; i++) await login(w.ws, `r${String(i)}`);
    const sockets = 4 + (await onBothWorkers(w, 'both'));
    expect(await stats(w)).toMatchObject({ onlineUids: 5, connections: sockets });
    const first = await figures(w);
    expect(first).toMatchObject({
      onlineUids: 5,
      connections: sockets,
      localOnlineUids: 5,
      localConnections: sockets,
      metricOnlineUids: 5,
      metricConnections: sockets,
    });
    for (let i = 0; i < 3; i++) expect(await figures(w)).toEqual(first);
  });
});

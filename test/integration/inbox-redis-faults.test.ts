import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { createClient } from '@redis/client';
import { afterEach, describe, expect, it } from 'vitest';
import { redisKeys } from '../../src/broker/redis/keys.js';
import { serveCli, type Served } from '../helpers/cli.js';
import { connectV1, eventually, offlineOf, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { startPersistentRedis, startRedisServer, type PersistentRedisHandle } from '../helpers/redis-servers.js';

// The inbox under faults, on real Redis: a node SIGKILLed, Redis killed and started again,
// a uid's inbox lost while a device is connected. Each test runs on a redis-server of its
// own, on a free port (never the shared one on 6379, which a test must not stop); without
// redis-server these tests fail, they never skip.

type Json = Record<string, unknown>;

const clients: TestClient[] = [];
const served: Served[] = [];
const nodes: Started[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of served.splice(0)) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
  await Promise.all(nodes.splice(0).map((n) => n.stop()));
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function call(api: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

function apiOf(node: Started): string {
  return `http://127.0.0.1:${String(node.server.address().api?.port ?? 0)}`;
}

/** A v1 device of `uid` on `url`, authenticated with `auth`'s extra fields; its first reply. */
async function device(url: string, uid: string, auth: Json = {}): Promise<{ client: TestClient; reply: Json }> {
  const client = await connectV1(url);
  clients.push(client);
  client.sendJson({ type: 'auth', uid, ...auth });
  return { client, reply: await client.nextJson(5000) };
}

/** The next `n` frames of `client`, parsed. */
async function frames(client: TestClient, n: number): Promise<Json[]> {
  const got: Json[] = [];
  for (let i = 0; i < n; i++) got.push(await client.nextJson(5000));
  return got;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('a uidpush node SIGKILLed', { timeout: 60_000 }, () => {
  it('gives a device that reconnects to another node exactly the pushes it missed, in order, once, then live ones', async () => {
    const redis = await startRedisServer();
    cleanups.push(() => {
      redis.stop();
    });
    const args = ['--inbox', '--redis', redis.url, '--redis-namespace', `faults-${randomUUID()}`];
    const a = await serveCli(args);
    served.push(a);
    const b = await serveCli(args);
    served.push(b);

    const { client: phone, reply: welcome } = await device(a.ws, 'nomad', { device: 'phone' });
    expect(welcome).toMatchObject({ type: 'welcome', device: 'phone', recovered: true, inbox: { offset: 0 } });
    const epoch = (welcome.inbox as Json).epoch as string;
    // The welcome waits for the uid's channel: a push through node B reaches node A from now.
    for (let i = 1; i <= 3; i++)
      expect((await call(b.api, 'POST', '/v1/push', { uid: 'nomad', data: { n: i } })).body).toMatchObject({ offset: i, epoch });
    expect((await frames(phone, 3)).map((m) => [m.offset, m.epoch])).toEqual(range(1, 3).map((n) => [n, epoch]));

    a.child.kill('SIGKILL');
    expect(await a.exited).toBe('SIGKILL');
    // The node's TCP died with it: no close frame.
    expect(await phone.closed()).toBe(1006);

    for (let i = 4; i <= 23; i++) {
      const answer = await call(b.api, 'POST', '/v1/push', { uid: 'nomad', data: { n: i } });
      expect(answer).toMatchObject({ status: 200, body: { offset: i, epoch } });
    }
    const again = await device(b.ws, 'nomad', { device: 'phone', since: { epoch, offset: 3 } });
    expect(again.reply).toMatchObject({ type: 'welcome', device: 'phone', recovered: true, missed: 20, inbox: { epoch, offset: 23 } });
    const replayed = await frames(again.client, 20);
    expect(replayed.map((m) => [m.type, m.offset, m.epoch, (m.data as Json).n])).toEqual(range(4, 23).map((n) => ['message', n, epoch, n]));

    await call(b.api, 'POST', '/v1/push', { uid: 'nomad', data: { n: 24 } });
    await call(b.api, 'POST', '/v1/push', { uid: 'nomad', data: { n: 25 } });
    // Read in order: a push written twice would come before these two.
    expect((await frames(again.client, 2)).map((m) => m.offset)).toEqual([24, 25]);
    expect(again.client.received).toHaveLength(1 + 20 + 2);
  });
});

describe('Redis killed and started again', { timeout: 60_000 }, () => {
  it('refuses durable pushes and v1 logins with unavailable while down, still delivers ephemeral ones here, and recovers what it accepted before', async () => {
    // Persistence on (the append-only file, fsync always): what Redis acknowledged before
    // its SIGKILL is there when it is started again. That is Redis's configuration.
    const redis: PersistentRedisHandle = await startPersistentRedis();
    cleanups.push(() => {
      redis.stop();
    });
    const node = await startServer({
      inbox: true,
      redis: redis.url,
      redisNamespace: `faults-${randomUUID()}`,
      brokerTimeout: 1000,
      rateLimit: 0,
    });
    nodes.push(node);
    const api = apiOf(node);

    const { client: phone, reply: welcome } = await device(node.url, 'keeper', { device: 'phone' });
    const epoch = (welcome.inbox as Json).epoch as string;
    expect((await call(api, 'POST', '/v1/push', { uid: 'keeper', data: 'seen' })).body).toMatchObject({ offset: 1, epoch });
    expect(await phone.nextJson()).toMatchObject({ offset: 1, data: 'seen' });
    const recorded = offlineOf(node.server, 'keeper');
    (phone.ws as unknown as { _socket: Socket })._socket.destroy();
    await recorded;
    for (const data of ['missed 2', 'missed 3']) expect((await call(api, 'POST', '/v1/push', { uid: 'keeper', data })).status).toBe(200);
    const { client: watcher } = await device(node.url, 'watcher', { device: 'tv' });

    await redis.kill();
    const durable = await call(api, 'POST', '/v1/push', { uid: 'keeper', data: 'refused' });
    expect(durable).toMatchObject({ status: 503, body: { error: { code: 'unavailable' } } });
    // Never downgraded: the same push to a uid connected here is refused too.
    expect(await call(api, 'POST', '/v1/push', { uid: 'watcher', data: 'refused too' })).toMatchObject({
      status: 503,
      body: { error: { code: 'unavailable' } },
    });
    const ephemeral = await call(api, 'POST', '/v1/push', { uid: 'watcher', data: 'now or never', delivery: 'ephemeral' });
    expect(ephemeral).toMatchObject({ status: 200, body: { online: 1, connections: 1, degraded: true } });
    // Its next frame: the refused push above was not delivered either.
    const got = await watcher.nextJson();
    expect(got).toMatchObject({ type: 'message', data: 'now or never' });
    expect(got.offset).toBeUndefined();

    const refused = await device(node.url, 'keeper', { device: 'phone', since: { epoch, offset: 1 } });
    expect(refused.reply).toMatchObject({ type: 'error', code: 'unavailable', message: 'auth: the inbox is unavailable; try again' });
    expect(await refused.client.closed()).toBe(1013);

    await redis.restart();
    // The node reconnects on its own schedule (the client's backoff): poll its readiness.
    await eventually(async () => {
      expect((await call(api, 'GET', '/readyz')).status).toBe(200);
    }, 20_000);
    const back = await device(node.url, 'keeper', { device: 'phone', since: { epoch, offset: 1 } });
    expect(back.reply).toMatchObject({ type: 'welcome', recovered: true, missed: 2, inbox: { epoch, offset: 3 } });
    expect((await frames(back.client, 2)).map((m) => [m.offset, m.epoch, m.data])).toEqual([
      [2, epoch, 'missed 2'],
      [3, epoch, 'missed 3'],
    ]);
    // The refused pushes were never retained, late or not: the next one is offset 4.
    expect((await call(api, 'POST', '/v1/push', { uid: 'keeper', data: 'live' })).body).toMatchObject({ offset: 4, epoch });
    expect(await back.client.nextJson()).toMatchObject({ offset: 4, data: 'live' });
    expect((await call(api, 'GET', '/v1/users/watcher/inbox')).body).toMatchObject({ top: 0 });
  });
});

describe("a uid's inbox lost in Redis while a device is connected", { timeout: 30_000 }, () => {
  it('resyncs the device in band: a resync frame with epoch_changed and the new epoch, then the new epoch from offset 1', async () => {
    // Keys deleted by hand stand in for an inbox Redis lost (a failover to a replica that
    // missed it, an eviction, a flush).
    const redis = await startRedisServer();
    cleanups.push(() => {
      redis.stop();
    });
    const url = redis.url;
    const namespace = `faults-${randomUUID()}`;
    const node = await startServer({ inbox: true, redis: url, redisNamespace: namespace });
    nodes.push(node);
    const api = apiOf(node);
    const { client, reply: welcome } = await device(node.url, 'amnesiac', { device: 'phone' });
    const epoch = (welcome.inbox as Json).epoch as string;
    await call(api, 'POST', '/v1/push', { uid: 'amnesiac', data: 'old' });
    expect(await client.nextJson()).toMatchObject({ offset: 1, epoch, data: 'old' });

    const raw = createClient({ url, socket: { reconnectStrategy: false } });
    await raw.connect();
    try {
      const keys = redisKeys(namespace).inbox('amnesiac');
      expect(await raw.del([keys.stream, keys.meta, keys.devices, keys.latest])).toBeGreaterThan(0);
    } finally {
      raw.destroy();
    }

    const fresh = (await call(api, 'POST', '/v1/push', { uid: 'amnesiac', data: 'new' })).body;
    expect(fresh).toMatchObject({ offset: 1 });
    const newEpoch = fresh.epoch as string;
    expect(newEpoch).not.toBe(epoch);
    expect(JSON.parse(await client.next())).toEqual({
      type: 'resync',
      recovered: false,
      reason: 'epoch_changed',
      inbox: { epoch: newEpoch, offset: 0 },
    });
    expect(await client.nextJson()).toMatchObject({ type: 'message', offset: 1, epoch: newEpoch, data: 'new' });
    await call(api, 'POST', '/v1/push', { uid: 'amnesiac', data: 'after' });
    expect(await client.nextJson()).toMatchObject({ type: 'message', offset: 2, epoch: newEpoch, data: 'after' });
    expect(client.closeCode).toBeUndefined();
  });
});

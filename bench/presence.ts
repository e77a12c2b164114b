/**
 * What the cluster's presence queries cost in Redis at scale, without 100,000 sockets:
 * `--nodes` Redis brokers (the real `createRedisBroker`) each report `--uids` / nodes
 * online uids through the store (`setLocal`, as logins do), plus `--shared` uids online on
 * every node; then, timed on one broker:
 *
 *  - `listUids`, one page of `--limit` (the first page and one from the middle), and a
 *    walk of the whole list page by page;
 *  - `totals` (`GET /v1/stats`), `connectionTotal` (what `POST /v1/broadcast` answers) and
 *    `connections` of one uid (`GET /v1/users/<uid>`);
 *  - the previous way to page: every node's presence hash read whole (HKEYS) and sorted,
 *    as a reference;
 *  - Redis memory per online uid (MEMORY USAGE of each node's hash and sorted set).
 *
 * `--store memory` runs the same queries on the in-process bus (`MemoryCluster`), the
 * store the primary of `--workers` keeps; the Redis-only rows are then left out.
 *
 * Usage: npx tsx bench/presence.ts [--store redis|memory] [--uids 100000] [--nodes 2]
 *          [--shared 1000] [--limit 100] [--reps 20] [--redis redis://127.0.0.1:6379]
 * Its keys live in a namespace of their own, deleted at the end. Every loop is bounded.
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createClient } from '@redis/client';
import { createRedisBroker, MemoryCluster, type Broker } from '../src/index.js';
import { silentLogger } from '../src/core/types.js';

const { values } = parseArgs({
  options: {
    uids: { type: 'string', default: '100000' },
    nodes: { type: 'string', default: '2' },
    shared: { type: 'string', default: '1000' },
    limit: { type: 'string', default: '100' },
    reps: { type: 'string', default: '20' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    store: { type: 'string', default: 'redis' },
  },
});
const int = (name: string, text: string, min: number, max: number): number => {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name}: an integer ${String(min)}..${String(max)}, not ${text}`);
  return v;
};
const UIDS = int('uids', values.uids, 1, 2_000_000);
const NODES = int('nodes', values.nodes, 1, 16);
const SHARED = int('shared', values.shared, 0, 100_000);
const LIMIT = int('limit', values.limit, 1, 1000);
const REPS = int('reps', values.reps, 1, 1000);
const URL = values.redis;
const STORE = values.store;
if (STORE !== 'redis' && STORE !== 'memory') throw new Error(`--store: redis or memory, not ${STORE}`);
const NS = `bench-presence-${String(process.pid)}-${String(Date.now())}`;

/** Median and max of `reps` runs of `fn`, in ms. */
async function time(fn: () => Promise<unknown>): Promise<{ median: number; max: number }> {
  const runs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = performance.now();
    await fn();
    runs.push(performance.now() - t);
  }
  runs.sort((a, b) => a - b);
  return { median: runs[Math.floor(runs.length / 2)] ?? 0, max: runs.at(-1) ?? 0 };
}
const fmt = (t: { median: number; max: number }): string => `${t.median.toFixed(2)} ms (max ${t.max.toFixed(2)})`;

const raw = STORE === 'redis' ? createClient({ url: URL }) : undefined;
await raw?.connect();
const memory = new MemoryCluster();
const brokers: Broker[] = [];
try {
  for (let n = 0; n < NODES; n++) {
    const nodeId = `node${String(n)}`;
    const broker =
      STORE === 'redis'
        ? createRedisBroker(URL, silentLogger, { namespace: NS, nodeId, presenceTtl: 60_000 })
        : memory.createBroker(nodeId);
    await broker.start(() => undefined);
    brokers.push(broker);
  }
  const t0 = performance.now();
  for (let i = 0; i < UIDS; i++) void brokers[i % NODES]?.presence.setLocal(`user${String(i).padStart(7, '0')}`, 1);
  for (let i = 0; i < SHARED; i++) for (const b of brokers) void b.presence.setLocal(`shared${String(i)}`, 1);
  // Presence is written once per tick; wait until Redis holds all of it.
  const expected = UIDS + SHARED;
  const store = brokers[0]?.presence;
  if (store === undefined) throw new Error('no broker');
  for (let i = 0; i < 600; i++) {
    if ((await store.totals()).onlineUids === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const written = performance.now() - t0;
  const totals = await store.totals();
  if (totals.onlineUids !== expected) throw new Error(`Redis holds ${String(totals.onlineUids)} uids, not ${String(expected)}`);

  const first = await time(() => store.listUids(null, LIMIT));
  const middle = await time(() => store.listUids(Buffer.from('user0050000').toString('base64url'), LIMIT));
  let pages = 0;
  let listed = 0;
  const walkStart = performance.now();
  for (let cursor: string | null = null; pages < 100_000;) {
    const page = await store.listUids(cursor, 1000);
    pages++;
    listed += page.uids.length;
    cursor = page.nextCursor;
    if (cursor === null) break;
  }
  const walk = performance.now() - walkStart;
  if (listed !== expected) throw new Error(`the walk listed ${String(listed)} uids, not ${String(expected)}`);
  const stats = await time(() => store.totals());
  const one = await time(() => store.connections(['user0000001']));
  const broadcast = await time(() => store.connectionTotal());
  let whole: { median: number; max: number } | undefined;
  let hashBytes = 0;
  let zsetBytes = 0;
  if (raw !== undefined) {
    whole = await time(async () => {
      const keys = await Promise.all(brokers.map((b) => raw.hKeys(`${NS}:presence:${b.nodeId}`)));
      return [...new Set(keys.flat())].sort().slice(0, LIMIT);
    });
    for (const b of brokers) {
      hashBytes += (await raw.memoryUsage(`${NS}:presence:${b.nodeId}`)) ?? 0;
      zsetBytes += (await raw.memoryUsage(`${NS}:uids:${b.nodeId}`)) ?? 0;
    }
  }
  const entries = UIDS + SHARED * NODES;
  const cpu = cpus()[0]?.model ?? 'unknown';
  console.log(`machine: ${String(cpus().length)} x ${cpu}, Node ${process.version}, store: ${STORE === 'redis' ? URL : 'in-process bus'}`);
  console.log(
    `${String(UIDS)} uids over ${String(NODES)} nodes + ${String(SHARED)} on every node; presence written in ${(written / 1000).toFixed(1)} s; ${String(REPS)} runs each, median (max)`,
  );
  console.log(`| query | time |`);
  console.log(`|---|---:|`);
  console.log(`| GET /v1/users?limit=${String(LIMIT)}, first page | ${fmt(first)} |`);
  console.log(`| GET /v1/users?limit=${String(LIMIT)}, a page from the middle | ${fmt(middle)} |`);
  console.log(`| the whole list, pages of 1,000 (${String(pages)} pages) | ${walk.toFixed(0)} ms |`);
  if (whole !== undefined) console.log(`| reference: every node's hash read whole and sorted, for one page | ${fmt(whole)} |`);
  console.log(`| GET /v1/stats | ${fmt(stats)} |`);
  console.log(`| connections in all (what POST /v1/broadcast answers) | ${fmt(broadcast)} |`);
  console.log(`| GET /v1/users/<uid> | ${fmt(one)} |`);
  if (raw !== undefined) {
    console.log(
      `| Redis memory per online uid per node: hash / sorted set | ${(hashBytes / entries).toFixed(0)} / ${(zsetBytes / entries).toFixed(0)} bytes |`,
    );
  }
} finally {
  await Promise.all(brokers.map((b) => b.close()));
  if (raw !== undefined) {
    for await (const keys of raw.scanIterator({ MATCH: `${NS}:*`, COUNT: 1000 })) if (keys.length > 0) await raw.del(keys);
    raw.destroy();
  }
}

/**
 * uidpush against a naive ws implementation of the seed, same load, same run:
 *
 *  1. memory: N idle logged-in connections from separate client processes (spread over
 *     127.x.0.y source addresses, new ones for each run and phase); server RSS and JS heap per connection after GC;
 *  2. broadcast: one `all:` message to all N; time from send to last delivery (timestamps
 *     in the payload), and the server's CPU time for it;
 *  3. targeted pushes: S sender processes, each keeping W pushes in flight to targets it
 *     holds itself; pushes/s delivered and latency p50/p99.
 *
 *  4. connect + login of the idle clients (64 at a time per process), and a reconnect storm:
 *     all of them dropped and reconnected at once; time and server CPU per connection.
 *
 * Usage: npm run bench -- [--n 19000] [--client-procs 4] [--senders 4] [--targets 250]
 *          [--inflight 64] [--duration 10] [--broadcasts 7] [--only uidpush|naive|uidpush-workers]
 *          [--workers N] [--repeat K]
 *          [--json out.json]
 *
 * Every loop is bounded in count and time; every process it starts, it ends.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { ask, now, quantile } from './lib/ipc.js';
import { describeMachine, forkReady, killStarted } from './lib/proc.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '19000' },
    'client-procs': { type: 'string', default: '4' },
    senders: { type: 'string', default: '4' },
    targets: { type: 'string', default: '250' },
    inflight: { type: 'string', default: '64' },
    duration: { type: 'string', default: '10' },
    broadcasts: { type: 'string', default: '7' },
    only: { type: 'string' },
    workers: { type: 'string' },
    repeat: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const N = Number(values.n);
const CLIENT_PROCS = Number(values['client-procs']);
const SENDERS = Number(values.senders);
const TARGETS = Number(values.targets);
const INFLIGHT = Number(values.inflight);
const DURATION_MS = Number(values.duration) * 1000;
const BROADCASTS = Number(values.broadcasts);
// --workers N adds `serve --workers N` (servers/uidpush-workers.ts) to the run.
const WORKERS = values.workers !== undefined ? Number(values.workers) : undefined;
if (N - SENDERS * (TARGETS + 1) - 1 < CLIENT_PROCS) {
  throw new Error(
    `--n ${String(N)} leaves no idle connections: it must exceed senders x (targets + 1) + 1 = ${String(SENDERS * (TARGETS + 1) + 1)}`,
  );
}
const IMPLS = values.only !== undefined ? [values.only] : ['naive', 'uidpush', ...(WORKERS !== undefined ? ['uidpush-workers'] : [])];

const here = import.meta.dirname;

async function start(script: string, execArgv: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const env = WORKERS !== undefined ? { BENCH_WORKERS: String(WORKERS) } : undefined;
  const { child, ready } = await forkReady(join(here, script), { execArgv, ...(env !== undefined ? { env } : {}) });
  return { child, port: ready.port ?? 0 };
}

/** Connects outstanding per idle process in the reconnect storm: all of them. */
const STORM_CONCURRENCY = 100_000;

/**
 * The second octet of the source addresses of a run's phase. Every run and phase has
 * addresses of its own: a client's closed connections leave its ports in TIME_WAIT for a
 * minute, and binding a new one on that address then searches past them (seen here: the
 * second server's connects took 4.5x the first's when both used the same addresses).
 */
const net = (run: number, phase: 0 | 1): number => 10 + run * 2 + phase;

const cpuSpan = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number => b.user + b.system - a.user - a.system;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Result {
  impl: string;
  connections: number;
  connectMs: number;
  connectServerCpuUs: number;
  stormMs: number;
  stormServerCpuUs: number;
  rssPerConnKB: number;
  rssPerConnFromZeroKB: number;
  heapPerConnKB: number;
  broadcastMs: number;
  broadcastUsPerRecipient: number;
  broadcastServerCpuUsPerRecipient: number;
  broadcastP50Ms: number;
  broadcastP99Ms: number;
  pushesPerSec: number;
  pushServerCpuUs: number;
  pushP50Ms: number;
  pushP99Ms: number;
}

async function bench(impl: string, run: number): Promise<Result> {
  const log = (msg: string): void => {
    process.stderr.write(`[${impl}] ${msg}\n`);
  };
  // BENCH_PROF=<dir> writes a V8 CPU profile of the server (written when it exits).
  const prof = process.env.BENCH_PROF;
  // BENCH_SERVER_FLAGS: more node flags for the server (e.g. --trace-gc).
  const extra = (process.env.BENCH_SERVER_FLAGS ?? '').split(' ').filter((f) => f !== '');
  const server = await start(`servers/${impl}.ts`, [
    '--expose-gc',
    ...(prof !== undefined ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
    ...extra,
  ]);
  const url = `ws://127.0.0.1:${server.port}`;
  const base = await ask<NodeJS.MemoryUsage>(server.child, 'memory');

  // Senders first: their connections (1 + targets each) count toward N.
  const senders = await Promise.all(Array.from({ length: SENDERS }, () => start('clients/sender.ts')));
  await Promise.all(
    senders.map((s, i) =>
      ask(s.child, 'open', {
        url,
        sender: `sender${i}`,
        targetPrefix: `t${i}_`,
        targets: TARGETS,
        localAddress: `127.${net(run, 0)}.1.${i + 1}`,
      }),
    ),
  );
  const idleCount = N - SENDERS * (TARGETS + 1) - 1; // one control connection below
  const idle = await Promise.all(Array.from({ length: CLIENT_PROCS }, () => start('clients/idle.ts')));
  // Memory is read twice, at half and at all of the idle connections: the slope between the
  // two is the cost of a connection, free of one-off growth (V8's young generation, code).
  const openShare = (half: 0 | 1) =>
    Promise.all(
      idle.map((c, i) => {
        const share = Math.floor(idleCount / CLIENT_PROCS) + (i < idleCount % CLIENT_PROCS ? 1 : 0);
        const first = Math.floor(share / 2);
        return ask<{ opened: number; errors: number; ms: number }>(c.child, 'open', {
          url,
          prefix: `i${i}_${half}_`,
          count: half === 0 ? first : share - first,
          localAddress: `127.${net(run, 0)}.0.${i + 2}`,
          concurrency: 64,
        });
      }),
    );
  // Connect + login is timed per half (the memory reading between them is not counted);
  // the server's CPU over both halves is divided by the connections opened.
  const cpuOpen0 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const firstHalf = await openShare(0);
  const cpuOpen1 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  await sleep(1000);
  const midCounts = await ask<{ connections: number; online: number }>(server.child, 'counts');
  const mid = await ask<NodeJS.MemoryUsage>(server.child, 'memory');
  const cpuOpen2 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const secondHalf = await openShare(1);
  const cpuOpen3 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const opened = [...firstHalf, ...secondHalf];
  const errors = opened.reduce((a, o) => a + o.errors, 0);
  const openedCount = opened.reduce((a, o) => a + o.opened, 0);
  const connectMs = Math.max(...firstHalf.map((o) => o.ms)) + Math.max(...secondHalf.map((o) => o.ms));
  const connectCpuUs = cpuSpan(cpuOpen0, cpuOpen1) + cpuSpan(cpuOpen2, cpuOpen3);
  log(
    `opened ${openedCount} idle connections in ${connectMs.toFixed(0)} ms (64 at a time per process), ${errors} errors; server cpu ${(connectCpuUs / 1000).toFixed(0)} ms`,
  );
  const control = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve) => {
    control.once('open', () => {
      control.send('control');
    });
    control.once('message', () => {
      resolve();
    });
  });
  const counts = await ask<{ connections: number; online: number }>(server.child, 'counts');
  log(`server holds ${counts.connections} connections, ${counts.online} uids`);

  await sleep(1000);
  const mem = await ask<NodeJS.MemoryUsage>(server.child, 'memory');
  const kb = (m: NodeJS.MemoryUsage): string =>
    `rss ${(m.rss / 2 ** 20).toFixed(1)} MiB, heap ${(m.heapUsed / 2 ** 20).toFixed(1)}/${(m.heapTotal / 2 ** 20).toFixed(1)} MiB, external ${(m.external / 2 ** 20).toFixed(1)} MiB`;
  log(`memory at 0: ${kb(base)}; at ${midCounts.connections}: ${kb(mid)}; at ${counts.connections}: ${kb(mem)}`);
  const added = counts.connections - midCounts.connections;
  const rssPerConnKB = (mem.rss - mid.rss) / added / 1024;
  // A server that cannot read its heap (uidpush-workers) sends null (JSON has no NaN).
  const heapOf = (m: NodeJS.MemoryUsage): number => (typeof m.heapUsed === 'number' ? m.heapUsed : NaN);
  const heapPerConnKB = (heapOf(mem) - heapOf(mid)) / added / 1024;
  const rssPerConnFromZeroKB = (mem.rss - base.rss) / counts.connections / 1024;
  log(
    `memory per connection: rss ${rssPerConnKB.toFixed(2)} KB (from zero: ${rssPerConnFromZeroKB.toFixed(2)} KB), heap ${heapPerConnKB.toFixed(2)} KB`,
  );

  // Broadcasts: the first warms up; the median of the rest is reported.
  const fanouts: number[] = [];
  const cpuPerRecipient: number[] = [];
  const allLatencies: number[] = [];
  for (let seq = 0; seq < BROADCASTS; seq++) {
    await sleep(300);
    const cpu0 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
    const sent = now();
    control.send(`all:b|${seq}|${sent}`);
    // Wait (bounded) until every idle client saw it.
    let received = 0;
    let last = 0;
    const latencies: number[] = [];
    const deadline = Date.now() + 30_000;
    while (received < idleCount && Date.now() < deadline) {
      await sleep(100);
      const reports = await Promise.all(
        idle.map((c) => ask<{ seq: number; count: number; last: number; latencies: number[] }[]>(c.child, 'broadcasts')),
      );
      for (const r of reports.flat()) {
        if (r.seq !== seq) continue;
        received += r.count;
        last = Math.max(last, r.last);
        latencies.push(...r.latencies);
      }
    }
    const cpu1 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
    const ms = last - sent;
    const cpuUs = cpu1.user + cpu1.system - cpu0.user - cpu0.system;
    log(`broadcast ${seq}: ${received}/${idleCount} in ${ms.toFixed(1)} ms; server cpu ${(cpuUs / 1000).toFixed(1)} ms`);
    if (received < idleCount) throw new Error(`broadcast ${seq} reached ${received} of ${idleCount}`);
    if (seq === 0) continue;
    fanouts.push(ms);
    cpuPerRecipient.push(cpuUs / counts.online);
    allLatencies.push(...latencies);
  }
  fanouts.sort((a, b) => a - b);
  cpuPerRecipient.sort((a, b) => a - b);
  allLatencies.sort((a, b) => a - b);
  const broadcastMs = quantile(fanouts, 0.5);

  // Targeted pushes, all senders at once; a short warm-up run first.
  const runTargeted = (durationMs: number) =>
    Promise.all(
      senders.map((s) =>
        ask<{ sent: number; delivered: number; elapsedMs: number; latencies: number[] }>(s.child, 'run', {
          durationMs,
          inflight: INFLIGHT,
          maxPushes: 5_000_000,
        }),
      ),
    );
  await runTargeted(2000);
  const cpuT0 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const runs = await runTargeted(DURATION_MS);
  const cpuT1 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const delivered = runs.reduce((a, r) => a + r.delivered, 0);
  const sentTotal = runs.reduce((a, r) => a + r.sent, 0);
  const elapsed = Math.max(...runs.map((r) => r.elapsedMs));
  const pushLat = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const pushesPerSec = (delivered / elapsed) * 1000;
  const serverCpuUs = cpuT1.user + cpuT1.system - cpuT0.user - cpuT0.system;
  log(
    `targeted: ${delivered}/${sentTotal} delivered in ${elapsed.toFixed(0)} ms = ${pushesPerSec.toFixed(0)}/s; ` +
      `server cpu ${((serverCpuUs / 1000 / elapsed) * 100).toFixed(0)}% of a core, ${(serverCpuUs / delivered).toFixed(2)} µs per push`,
  );

  // Reconnect storm: every idle connection dropped at once and reconnected at once.
  const cpuS0 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const storms = await Promise.all(
    idle.map((c, i) =>
      ask<{ opened: number; errors: number; ms: number }>(c.child, 'storm', {
        concurrency: STORM_CONCURRENCY,
        localAddress: `127.${net(run, 1)}.0.${i + 2}`,
      }),
    ),
  );
  const cpuS1 = await ask<NodeJS.CpuUsage>(server.child, 'cpu');
  const stormMs = Math.max(...storms.map((r) => r.ms));
  const stormOpened = storms.reduce((a, r) => a + r.opened, 0);
  const stormErrors = storms.reduce((a, r) => a + r.errors, 0);
  const stormCpuUs = cpuSpan(cpuS0, cpuS1);
  log(
    `reconnect storm: ${stormOpened}/${idleCount} back in ${stormMs.toFixed(0)} ms (${STORM_CONCURRENCY} at a time per process), ${stormErrors} errors; ` +
      `server cpu ${(stormCpuUs / 1000).toFixed(0)} ms`,
  );
  const firstIdle = idle[0];
  if (stormErrors > 0 && firstIdle !== undefined)
    log(`storm errors: ${(await ask<string[]>(firstIdle.child, 'errors')).slice(0, 3).join('; ')}`);

  control.terminate();
  // A clean exit lets --cpu-prof write its profile.
  const serverExited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.disconnect();
  await Promise.race([serverExited, sleep(5000)]);
  killStarted();
  await sleep(2000); // let the kernel reap sockets before the next run
  return {
    impl,
    connections: counts.connections,
    connectMs,
    connectServerCpuUs: connectCpuUs / openedCount,
    stormMs,
    stormServerCpuUs: stormCpuUs / Math.max(1, stormOpened),
    rssPerConnKB,
    rssPerConnFromZeroKB,
    heapPerConnKB,
    broadcastMs,
    broadcastUsPerRecipient: (broadcastMs * 1000) / counts.online,
    broadcastServerCpuUsPerRecipient: quantile(cpuPerRecipient, 0.5),
    broadcastP50Ms: quantile(allLatencies, 0.5),
    broadcastP99Ms: quantile(allLatencies, 0.99),
    pushesPerSec,
    pushServerCpuUs: serverCpuUs / delivered,
    pushP50Ms: quantile(pushLat, 0.5),
    pushP99Ms: quantile(pushLat, 0.99),
  };
}

// --repeat K: K rounds, the order of the servers reversed every other round (so neither
// always runs on a box the other has just loaded); each figure is the median over the
// rounds. One run's figures vary by tens of percent here (the clients share the 2 cores,
// and a storm's SYNs past the listen backlog wait 1 s or 3 s for their retransmit).
const REPEAT = Number(values.repeat);
const runsOf = new Map<string, Result[]>(IMPLS.map((impl) => [impl, []]));
let run = 0;
for (let round = 0; round < REPEAT; round++) {
  const order = round % 2 === 0 ? IMPLS : [...IMPLS].reverse();
  for (const impl of order) runsOf.get(impl)?.push(await bench(impl, run++));
}
const median = (xs: number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const results: Result[] = IMPLS.map((impl) => {
  const runs = runsOf.get(impl) ?? [];
  const first = runs[0];
  if (first === undefined) throw new Error(`no run of ${impl}`);
  const out: Result = { ...first };
  for (const key of Object.keys(first) as (keyof Result)[]) {
    if (typeof first[key] === 'number') (out as unknown as Record<string, number>)[key] = median(runs.map((r) => r[key] as number));
  }
  return out;
});

const fmt = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
const ratio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : '-');
const rows: [string, keyof Result, number, 'lower' | 'higher'][] = [
  ['connect + login of the idle clients (ms)', 'connectMs', 0, 'lower'],
  ['connect + login: server CPU per connection (µs)', 'connectServerCpuUs', 1, 'lower'],
  ['reconnect storm: all idle clients at once (ms)', 'stormMs', 0, 'lower'],
  ['reconnect storm: server CPU per connection (µs)', 'stormServerCpuUs', 1, 'lower'],
  ['RSS per connection, slope N/2 to N (KB)', 'rssPerConnKB', 2, 'lower'],
  ['RSS per connection, from zero (KB)', 'rssPerConnFromZeroKB', 2, 'lower'],
  ['JS heap per connection (KB)', 'heapPerConnKB', 2, 'lower'],
  ['broadcast: send to last delivery (ms)', 'broadcastMs', 1, 'lower'],
  ['broadcast: per recipient (µs)', 'broadcastUsPerRecipient', 2, 'lower'],
  ['broadcast: server CPU per recipient (µs)', 'broadcastServerCpuUsPerRecipient', 2, 'lower'],
  ['broadcast: delivery latency p50 (ms)', 'broadcastP50Ms', 1, 'lower'],
  ['broadcast: delivery latency p99 (ms)', 'broadcastP99Ms', 1, 'lower'],
  ['targeted pushes/s', 'pushesPerSec', 0, 'higher'],
  ['targeted: server CPU per push (µs)', 'pushServerCpuUs', 2, 'lower'],
  ['targeted push latency p50 (ms)', 'pushP50Ms', 2, 'lower'],
  ['targeted push latency p99 (ms)', 'pushP99Ms', 2, 'lower'],
];
const naive = results.find((r) => r.impl === 'naive');
const others = naive !== undefined ? results.filter((r) => r !== naive) : [];
const lines = [
  `N = ${N} connections; ${SENDERS} senders x ${INFLIGHT} in flight, ${TARGETS} targets each, ${DURATION_MS / 1000} s; ${BROADCASTS - 1} broadcasts (median) after 1 warm-up` +
    (REPEAT > 1 ? `; medians of ${REPEAT} rounds` : '') +
    (WORKERS !== undefined ? `; uidpush-workers = serve --workers ${WORKERS}` : ''),
  `machine: ${describeMachine()}`,
  '',
  `| figure | ${results.map((r) => r.impl).join(' | ')} |${others.map((r) => ` ${r.impl} / naive |`).join('')}`,
  `|---|${results.map(() => '---:').join('|')}|${others.map(() => '---:|').join('')}`,
  ...rows.map(([label, key, d]) => {
    const cells = results.map((r) => fmt(r[key] as number, d));
    const ratios = naive !== undefined ? others.map((r) => ` ${ratio((r[key] as number) / (naive[key] as number))} |`).join('') : '';
    return `| ${label} | ${cells.join(' | ')} |${ratios}`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json !== undefined) await writeFile(values.json, JSON.stringify({ N, results, runs: Object.fromEntries(runsOf) }, null, 2));
killStarted();
process.exit(0);

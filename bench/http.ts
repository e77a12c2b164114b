/**
 * Pushes per second through uidpush's server API and inner text port, with N logged-in
 * WebSocket clients counting what they receive:
 *
 *  a. HTTP, one uid per request: `POST /v1/push {"uid", "data"}`, uids round-robin over N;
 *  b. HTTP, batches: `POST /v1/push {"uids": [B uids], "data"}` for each B of --batches;
 *  c. the inner text port: newline-delimited `{"uid","data"}` lines, --inner-inflight lines
 *     unanswered at a time.
 *
 * HTTP load is autocannon (keep-alive), in a forked load process (clients/pusher.ts); the
 * server (servers/uidpush-api.ts) and the idle clients (clients/idle.ts) are forked too.
 * Each scenario: a pipelining sweep (HTTP, with --pipelining auto), a warm-up, then the
 * measured run; deliveries are counted at the clients and by the server.
 *
 * Usage: npx tsx bench/http.ts [--n 10000] [--client-procs 4] [--duration 10] [--warmup 2]
 *          [--connections 50] [--pipelining auto|1..10] [--sweep 1,2,4,10]
 *          [--sweep-duration 4] [--batches 100,1000] [--inner-inflight 1000]
 *          [--inner-conns 1] [--only single,batch,inner] [--json out.json]
 *        BENCH_PROF=<dir> also writes a V8 CPU profile of the server.
 *
 * Every loop is bounded in count and time; every process it starts, it ends.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { HttpResult, InnerResult } from './clients/pusher.js';
import { ask } from './lib/ipc.js';
import { describeMachine, machineCpu, machinePct } from './lib/proc.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '10000' },
    'client-procs': { type: 'string', default: '4' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    pipelining: { type: 'string', default: 'auto' },
    sweep: { type: 'string', default: '1,2,4,10' },
    'sweep-duration': { type: 'string', default: '4' },
    batches: { type: 'string', default: '100,1000' },
    'inner-inflight': { type: 'string', default: '1000' },
    'inner-conns': { type: 'string', default: '1' },
    only: { type: 'string', default: 'single,batch,inner' },
    json: { type: 'string' },
  },
});

const positiveInt = (name: string, text: string, max: number): number => {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--${name}: an integer 1..${max}, not ${text}`);
  return v;
};
const N = positiveInt('n', values.n, 19_000);
const CLIENT_PROCS = positiveInt('client-procs', values['client-procs'], 8);
const DURATION = positiveInt('duration', values.duration, 600);
const WARMUP = positiveInt('warmup', values.warmup, 60);
const CONNECTIONS = positiveInt('connections', values.connections, 1000);
/** Sweep rates within this fraction of the best count as a tie. */
const TIE = 0.05;
const SWEEP_DURATION = positiveInt('sweep-duration', values['sweep-duration'], 60);
const PIPELININGS =
  values.pipelining === 'auto'
    ? values.sweep.split(',').map((p) => positiveInt('sweep', p, 10))
    : [positiveInt('pipelining', values.pipelining, 10)];
const BATCHES = values.batches.split(',').map((b) => positiveInt('batches', b, 10_000));
const INNER_INFLIGHT = positiveInt('inner-inflight', values['inner-inflight'], 100_000);
const INNER_CONNS = positiveInt('inner-conns', values['inner-conns'], 16);
const ONLY = new Set(values.only.split(','));
if (N / CLIENT_PROCS > 18_000) throw new Error('more than 18,000 connections per client process');

/** The API key of this run (the server requires >= 16 characters). */
const API_KEY = 'uidpush-bench-api-key-0123456789';
/** The pushed text: 60 bytes, never a broadcast marker (`b|`). */
const DATA = 'bench push payload: 0123456789 abcdefghijklmnopqrstuvwxyz!!!';
/** Targets the figures are compared against. */
const TARGET_SINGLE = 15_000; // pushes/s, one uid per request
const TARGET_BATCH = 150_000; // uid deliveries/s, batched

const here = import.meta.dirname;
const children: ChildProcess[] = [];

function stopAll(): void {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAll();
    process.exit(130);
  });
}

interface Ready {
  ready: boolean;
  port?: number;
  apiPort?: number;
  innerPort?: number;
}

function start(script: string, env: Record<string, string> = {}, execArgv: string[] = []): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(join(here, script), [], {
    execArgv: ['--import', 'tsx', ...execArgv],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${script}: not ready in 60 s`));
    }, 60_000);
    child.once('message', (msg: Ready) => {
      clearTimeout(timer);
      resolve({ child, ready: msg });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${String(code)}`));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string): void => {
  process.stderr.write(`[http] ${msg}\n`);
};
const cpuUs = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage): number => b.user + b.system - a.user - a.system;

interface Stats {
  messagesOut: number;
  dropped: Record<string, number>;
}

interface Row {
  scenario: string;
  /** What the rate counts: requests or lines. */
  unit: 'req' | 'line';
  batch: number;
  pipelining: number | undefined;
  perSec: number;
  deliveriesPerSec: number;
  /** Answered requests/lines x batch: the deliveries the load generator saw acknowledged. */
  expectedDeliveries: number;
  /** Written requests/lines x batch: the most the clients may receive (some were in flight at the end). */
  maxDeliveries: number;
  clientDeliveries: number;
  serverFrames: number;
  errors: number;
  errorDetail: string;
  serverCpu: number;
  loaderCpu: number;
  clientsCpu: number;
  /** The whole machine's busy time, % of one core (all processes, kernel included). */
  machineCpu: number;
  /** irq + softirq time (network processing the kernel did not charge to a process). */
  irqCpu: number;
  stealCpu: number;
  p50: number;
  p99: number;
  target: number;
  targetUnit: string;
}

async function main(): Promise<void> {
  // Anything else running skews every figure: say so up front.
  const q0 = machineCpu();
  await sleep(1000);
  const quiet = machinePct(q0, machineCpu());
  log(`machine before the run: ${fmt(quiet.busy)}% busy of ${cpus().length * 100}% (steal ${fmt(quiet.steal)}%)`);
  if (quiet.busy > 10) log('WARNING: the machine is not idle; the figures will be low and noisy');
  // BENCH_PROF=<dir> writes a V8 CPU profile of the server (written when it exits).
  const prof = process.env.BENCH_PROF;
  const server = await start(
    'servers/uidpush-api.ts',
    { BENCH_API_KEY: API_KEY },
    prof !== undefined ? ['--cpu-prof', '--cpu-prof-dir', prof] : [],
  );
  const { port, apiPort, innerPort } = server.ready;
  if (port === undefined || apiPort === undefined || innerPort === undefined) throw new Error('server: no ports');
  log(`server: ws ${port}, api ${apiPort}, inner ${innerPort}`);
  const apiUrl = `http://127.0.0.1:${apiPort}`;

  // N idle clients from CLIENT_PROCS processes, one source address each.
  const idle = await Promise.all(Array.from({ length: CLIENT_PROCS }, () => start('clients/idle.ts')));
  const shares = idle.map((_, i) => Math.floor(N / CLIENT_PROCS) + (i < N % CLIENT_PROCS ? 1 : 0));
  const t0 = Date.now();
  const opened = await Promise.all(
    idle.map((c, i) =>
      ask<{ opened: number; errors: number }>(c.child, 'open', {
        url: `ws://127.0.0.1:${port}`,
        prefix: `h${i}_`,
        count: shares[i],
        localAddress: `127.0.0.${i + 2}`,
        concurrency: 64,
      }),
    ),
  );
  const openErrors = opened.reduce((a, o) => a + o.errors, 0);
  const counts = await ask<{ connections: number; online: number }>(server.child, 'counts');
  log(
    `opened ${opened.reduce((a, o) => a + o.opened, 0)} clients in ${Date.now() - t0} ms, ${openErrors} errors; server: ${counts.connections} connections, ${counts.online} uids`,
  );
  if (openErrors > 0 || counts.online !== N) throw new Error(`expected ${N} online uids, server has ${counts.online}`);

  // The uids, interleaved over the client processes so each gets an even share at any time.
  const uids: string[] = [];
  for (let j = 0; j < Math.max(...shares); j++) {
    for (let i = 0; i < CLIENT_PROCS; i++) if (j < (shares[i] ?? 0)) uids.push(`h${i}_${j}`);
  }

  const loader = await start('clients/pusher.ts');

  /** Reads (and resets) the clients' counts until they stop growing; returns the sum. */
  const drainReceived = async (): Promise<number> => {
    let total = 0;
    let quiet = 0;
    const deadline = Date.now() + 60_000;
    while (quiet < 2 && Date.now() < deadline) {
      await sleep(250);
      const got = (await Promise.all(idle.map((c) => ask<number>(c.child, 'received')))).reduce((a, b) => a + b, 0);
      total += got;
      quiet = got === 0 ? quiet + 1 : 0;
    }
    return total;
  };

  // Sanity: one push through the API reaches its client.
  const check = await fetch(`${apiUrl}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ uid: uids[0], data: DATA }),
  });
  const checkBody: unknown = await check.json();
  const checkReceived = await drainReceived();
  log(`check: ${check.status} ${JSON.stringify(checkBody)}, received ${checkReceived}`);
  if (check.status !== 200 || checkReceived !== 1) throw new Error('the API check push did not arrive');

  const cpuAll = () =>
    Promise.all([
      ask<NodeJS.CpuUsage>(server.child, 'cpu'),
      ask<NodeJS.CpuUsage>(loader.child, 'cpu'),
      Promise.all(idle.map((c) => ask<NodeJS.CpuUsage>(c.child, 'cpu'))),
    ]);

  const http = (batch: number, pipelining: number, durationSec: number): Promise<HttpResult> =>
    ask<HttpResult>(loader.child, 'http', {
      url: apiUrl,
      apiKey: API_KEY,
      uids,
      batch,
      data: DATA,
      connections: CONNECTIONS,
      pipelining,
      durationSec,
    });
  const inner = (durationMs: number): Promise<InnerResult> =>
    ask<InnerResult>(loader.child, 'inner', {
      host: '127.0.0.1',
      port: innerPort,
      uids,
      data: DATA,
      connections: INNER_CONNS,
      inflight: INNER_INFLIGHT,
      durationMs,
    });

  /** Runs `load` with CPU, server stats and client counts taken around it. */
  /** The fields every scenario's row takes from its measurement, the same way. */
  const measuredFields = (
    m: {
      clientDeliveries: number;
      serverFrames: number;
      serverCpu: number;
      loaderCpu: number;
      clientsCpu: number;
      machine: { busy: number; irq: number; steal: number };
    },
    r: { latencyP50: number; latencyP99: number },
    errors: number,
    detail: string,
  ) => ({
    clientDeliveries: m.clientDeliveries,
    serverFrames: m.serverFrames,
    errors,
    errorDetail: detail,
    serverCpu: m.serverCpu,
    loaderCpu: m.loaderCpu,
    clientsCpu: m.clientsCpu,
    machineCpu: m.machine.busy,
    irqCpu: m.machine.irq,
    stealCpu: m.machine.steal,
    p50: r.latencyP50,
    p99: r.latencyP99,
  });
  const measured = async <T>(load: () => Promise<T>) => {
    await drainReceived(); // whatever is left from the warm-up
    const stats0 = await ask<Stats>(server.child, 'stats');
    const [s0, l0, c0] = await cpuAll();
    const m0 = machineCpu();
    const w0 = performance.now();
    const result = await load();
    const wallMs = performance.now() - w0;
    const m1 = machineCpu();
    const [s1, l1, c1] = await cpuAll();
    const clientDeliveries = await drainReceived();
    const stats1 = await ask<Stats>(server.child, 'stats');
    const pct = (us: number): number => (us / 1000 / wallMs) * 100;
    const dropped = Object.entries(stats1.dropped)
      .map(([reason, count]) => [reason, count - (stats0.dropped[reason] ?? 0)] as const)
      .filter(([, d]) => d > 0);
    return {
      result,
      clientDeliveries,
      serverFrames: stats1.messagesOut - stats0.messagesOut,
      dropped,
      serverCpu: pct(cpuUs(s0, s1)),
      loaderCpu: pct(cpuUs(l0, l1)),
      clientsCpu: pct(c0.reduce((a, c, i) => a + cpuUs(c, c1[i] ?? c), 0)),
      machine: machinePct(m0, m1),
    };
  };

  const rows: Row[] = [];
  const sweeps: string[] = [];

  const httpScenario = async (name: string, batch: number, target: number, targetUnit: string): Promise<void> => {
    let best = PIPELININGS[0] ?? 1;
    if (PIPELININGS.length > 1) {
      // The highest rate wins; a shallower pipeline within TIE of it is taken instead (the
      // sweep's runs differ by more than that from noise alone, and it has lower latency).
      await http(batch, best, WARMUP);
      await drainReceived();
      const rates: [number, number][] = [];
      for (const p of PIPELININGS) {
        const r = await http(batch, p, SWEEP_DURATION);
        await drainReceived(); // let the requests still in flight finish before the next run
        const rate = r.ok / r.durationSec;
        const errs = r.non2xx + r.errors + r.timeouts;
        rates.push([p, rate]);
        sweeps.push(`| ${name} | ${p} | ${fmt(rate)} | ${fmt(rate * batch)} | ${r.latencyP50} | ${r.latencyP99} | ${errs} |`);
        log(`${name} sweep: pipelining ${p}: ${fmt(rate)} req/s, p50 ${r.latencyP50} ms, p99 ${r.latencyP99} ms, ${errs} errors`);
      }
      const top = Math.max(...rates.map(([, rate]) => rate));
      best = rates.filter(([, rate]) => rate >= top * (1 - TIE)).sort((a, b) => a[0] - b[0])[0]?.[0] ?? best;
      log(`${name}: pipelining ${best}`);
    }
    await http(batch, best, WARMUP);
    const m = await measured(() => http(batch, best, DURATION));
    const r = m.result;
    const perSec = r.ok / r.durationSec;
    const errors = r.non2xx + r.errors + r.timeouts + m.dropped.reduce((a, [, d]) => a + d, 0);
    const detail = [
      `non2xx ${r.non2xx}`,
      `errors ${r.errors}`,
      `timeouts ${r.timeouts}`,
      ...m.dropped.map(([reason, d]) => `dropped ${reason} ${d}`),
    ].join(', ');
    log(
      `${name}: ${r.ok} x ${batch} in ${r.durationSec} s = ${fmt(perSec)} req/s, ${fmt(perSec * batch)} deliveries/s; ` +
        `clients got ${m.clientDeliveries}, server wrote ${m.serverFrames}; ${detail}; ` +
        `cpu server ${fmt(m.serverCpu)}%, autocannon ${fmt(m.loaderCpu)}%, clients ${fmt(m.clientsCpu)}%, ` +
        `machine ${fmt(m.machine.busy)}% busy (softirq ${fmt(m.machine.irq)}%, not the bench's processes ${fmt(m.machine.busy - m.serverCpu - m.loaderCpu - m.clientsCpu)}%, steal ${fmt(m.machine.steal)}%)`,
    );
    rows.push({
      scenario: name,
      unit: 'req',
      batch,
      pipelining: best,
      perSec,
      deliveriesPerSec: perSec * batch,
      expectedDeliveries: r.ok * batch,
      maxDeliveries: r.sent * batch,
      ...measuredFields(m, r, errors, detail),
      target,
      targetUnit,
    });
  };

  if (ONLY.has('single')) await httpScenario('HTTP, 1 uid per request', 1, TARGET_SINGLE, 'pushes/s');
  if (ONLY.has('batch')) {
    for (const b of BATCHES) await httpScenario(`HTTP, ${b} uids per request`, b, TARGET_BATCH, 'deliveries/s');
  }
  if (ONLY.has('inner')) {
    const name = `inner text port, ${INNER_INFLIGHT} in flight`;
    await inner(WARMUP * 1000);
    const m = await measured(() => inner(DURATION * 1000));
    const r = m.result;
    const answered = r.ok + r.fail + r.errors;
    const perSec = (answered / r.elapsedMs) * 1000;
    const errors = r.fail + r.errors + r.unanswered + m.dropped.reduce((a, [, d]) => a + d, 0);
    const detail = [
      `fail ${r.fail}`,
      `error ${r.errors}`,
      `unanswered ${r.unanswered}`,
      ...m.dropped.map(([reason, d]) => `dropped ${reason} ${d}`),
    ].join(', ');
    log(
      `${name}: ${r.ok} ok of ${r.sent} lines in ${fmt(r.elapsedMs)} ms = ${fmt(perSec)} lines/s; ` +
        `clients got ${m.clientDeliveries}, server wrote ${m.serverFrames}; ${detail}; ` +
        `cpu server ${fmt(m.serverCpu)}%, loader ${fmt(m.loaderCpu)}%, clients ${fmt(m.clientsCpu)}%, ` +
        `machine ${fmt(m.machine.busy)}% busy (softirq ${fmt(m.machine.irq)}%, not the bench's processes ${fmt(m.machine.busy - m.serverCpu - m.loaderCpu - m.clientsCpu)}%, steal ${fmt(m.machine.steal)}%)`,
    );
    rows.push({
      scenario: name,
      unit: 'line',
      batch: 1,
      pipelining: undefined,
      perSec,
      deliveriesPerSec: (r.ok / r.elapsedMs) * 1000,
      expectedDeliveries: r.ok,
      maxDeliveries: r.sent,
      ...measuredFields(m, r, errors, detail),
      target: TARGET_SINGLE,
      targetUnit: 'pushes/s',
    });
  }

  const lines = [
    `N = ${N} logged-in WebSocket clients in ${CLIENT_PROCS} processes; ${DURATION} s per scenario after a ${WARMUP} s warm-up; ` +
      `autocannon ${CONNECTIONS} connections, keep-alive, pipelining ${values.pipelining === 'auto' ? `best of ${PIPELININGS.join('/')} (${SWEEP_DURATION} s each)` : PIPELININGS.join('')}; ` +
      `inner text port: ${INNER_CONNS} connection(s), ${INNER_INFLIGHT} lines in flight each; ${Buffer.byteLength(DATA)}-byte data`,
    `machine: ${describeMachine()}`,
    '',
    `| scenario | pipelining | requests/s (lines/s) | uid deliveries/s | answered x batch | client-counted deliveries | check | errors | server CPU % | load gen CPU % | clients CPU % | machine busy % (of ${cpus().length * 100}) | of which not the bench's processes % | latency p50 / p99 (ms) | target | met |`,
    '|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---|:---:|',
    ...rows.map((r) => {
      const achieved = r.targetUnit === 'pushes/s' ? r.perSec : r.deliveriesPerSec;
      return (
        `| ${r.scenario} | ${r.pipelining ?? '-'} | ${fmt(r.perSec)} ${r.unit === 'line' ? 'lines' : 'req'}/s | ${fmt(r.deliveriesPerSec)} | ` +
        `${fmt(r.expectedDeliveries)} | ${fmt(r.clientDeliveries)} | ${deliveriesCheck(r)} | ${r.errors} | ${fmt(r.serverCpu)} | ${fmt(r.loaderCpu)} | ${fmt(r.clientsCpu)} | ${fmt(r.machineCpu)} | ` +
        `${fmt(r.machineCpu - r.serverCpu - r.loaderCpu - r.clientsCpu)} | ` +
        `${fmtMs(r.p50)} / ${fmtMs(r.p99)} | >= ${fmt(r.target)} ${r.targetUnit} | ${achieved >= r.target ? 'yes' : 'no'} |`
      );
    }),
    '',
    'Errors: ' + rows.map((r) => `${r.scenario}: ${r.errorDetail}`).join('; '),
    "Not the bench's processes: machine busy time minus server, load generator and clients: kernel work not charged " +
      'to a process, this orchestrator, and anything else running (more than ~15% means the figures are skewed).',
    'Server frames written per scenario: ' + rows.map((r) => `${r.scenario}: ${fmt(r.serverFrames)}`).join('; '),
    'check: "ok" when the clients counted exactly the frames the server wrote, and at least answered x batch and at most ' +
      'written x batch (requests still in flight when autocannon stops are served, but not counted as answered).',
  ];
  if (sweeps.length > 0) {
    lines.push(
      '',
      `Pipelining sweep (${CONNECTIONS} connections, ${SWEEP_DURATION} s each):`,
      '',
      '| scenario | pipelining | requests/s | uid deliveries/s | p50 (ms) | p99 (ms) | errors |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...sweeps,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify({ N, rows }, null, 2));

  // A clean exit lets --cpu-prof write its profile; the rest is killed by stopAll.
  const serverExited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.disconnect();
  await Promise.race([serverExited, sleep(5000)]);
}

function deliveriesCheck(r: Row): string {
  const ok = r.clientDeliveries === r.serverFrames && r.clientDeliveries >= r.expectedDeliveries && r.clientDeliveries <= r.maxDeliveries;
  return ok ? 'ok' : `MISMATCH (server ${r.serverFrames}, written x batch ${r.maxDeliveries})`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-';
}
function fmtMs(x: number): string {
  return Number.isFinite(x) ? (x < 10 ? x.toFixed(2) : x.toFixed(0)) : '-';
}

try {
  await main();
} finally {
  stopAll();
}
process.exit(0);

/**
 * uidpush as a cluster (issue 5), with the CLI as an operator runs it:
 *
 *  A. `--part latency`: targeted pushes that cross nodes. Two `uidpush serve --redis`
 *     nodes on one Redis (a namespace of this run's own, deleted at the end); target
 *     clients on node B, one sender connection on node A pushing `<uid>:p|<sent-at>` at a
 *     fixed rate (clients/paced.ts); each target records arrival - sent-at. First a fixed
 *     rate (10,000/s for 10 s); then, on fresh nodes, rising rates (5 s each: 15,000/s
 *     and up, or the --lower-rates below the fixed rate if that failed) until the first
 *     that is not sustained (not every push delivered, the sender not keeping the rate,
 *     or p99 over 50 ms). The same on one node without Redis, as the baseline.
 *  B. `--part workers`: 100,000 idle clients (clients/idle.ts, several processes, each on
 *     source addresses of its own) through `uidpush serve --workers 6`; time to open them,
 *     errors, then broadcasts `all:b|<seq>|<sent-at>` from a control client: send to last
 *     delivery over every idle client; RSS of the primary and the workers.
 *
 * Usage: npx tsx bench/cluster.ts [--part latency|workers|all] [--redis redis://127.0.0.1:6379]
 *          [--targets 1000] [--target-procs 2] [--rate 10000] [--duration 10]
 *          [--rates 15000,20000,...] [--lower-rates 500,1000,...] [--step-duration 5]
 *          [--max-p99 50]
 *          [--only cross-node|one-node] [--n 100000] [--workers 6] [--client-procs 6]
 *          [--addrs-per-proc 4] [--broadcasts 3] [--json out.json]
 *        BENCH_PROF=<dir> also writes a V8 CPU profile of each server process.
 *
 * Every loop is bounded in count and time; every process it starts, it ends (the
 * workers of `--workers` by their pids, read with `pgrep -P <primary>`).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createClient } from '@redis/client';
import { deleteNamespace } from './lib/redis.js';
import { WebSocket } from 'ws';
import type { Collected, RunResult } from './clients/paced.js';
import { ask, now, quantile } from './lib/ipc.js';
import { alive, childPids, describeMachine, exited, machineCpu, machinePct, processCpuSeconds } from './lib/proc.js';

const DEFAULT_RATES = '15000,20000,25000,30000,35000,40000,50000,60000,70000,80000,100000,120000,150000,200000';
const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'all' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    targets: { type: 'string', default: '1000' },
    'target-procs': { type: 'string', default: '2' },
    rate: { type: 'string', default: '10000' },
    duration: { type: 'string', default: '10' },
    rates: { type: 'string', default: DEFAULT_RATES },
    'lower-rates': { type: 'string', default: '500,1000,2000,3000,4000,5000,6000,8000' },
    'step-duration': { type: 'string', default: '5' },
    'max-p99': { type: 'string', default: '50' },
    n: { type: 'string', default: '100000' },
    workers: { type: 'string', default: '6' },
    'client-procs': { type: 'string', default: '6' },
    'addrs-per-proc': { type: 'string', default: '4' },
    broadcasts: { type: 'string', default: '3' },
    only: { type: 'string' },
    json: { type: 'string' },
  },
});

const int = (name: string, text: string, min: number, max: number): number => {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name}: an integer ${min}..${max}, not ${text}`);
  return v;
};
const PART = values.part;
if (!['latency', 'workers', 'all'].includes(PART)) throw new Error(`--part: latency, workers or all, not ${PART}`);
const REDIS_URL = values.redis;
const TARGETS = int('targets', values.targets, 1, 10_000);
const TARGET_PROCS = int('target-procs', values['target-procs'], 1, 8);
const RATE = int('rate', values.rate, 1, 1_000_000);
const DURATION_MS = int('duration', values.duration, 1, 120) * 1000;
const RATES = values.rates.split(',').map((r) => int('rates', r, 1, 1_000_000));
/** The search's rates when the fixed rate is not sustained (those below it, rising). */
const LOWER_RATES = values['lower-rates']
  .split(',')
  .map((r) => int('lower-rates', r, 1, 1_000_000))
  .sort((a, b) => a - b);
const STEP_MS = int('step-duration', values['step-duration'], 1, 60) * 1000;
const MAX_P99 = int('max-p99', values['max-p99'], 1, 10_000);
const N = int('n', values.n, 1, 150_000);
const WORKERS = int('workers', values.workers, 1, 16);
const CLIENT_PROCS = int('client-procs', values['client-procs'], 1, 16);
const BROADCASTS = int('broadcasts', values.broadcasts, 1, 20);
const ONLY = values.only;
if (ONLY !== undefined && !['cross-node', 'one-node'].includes(ONLY)) throw new Error(`--only: cross-node or one-node, not ${ONLY}`);
/** BENCH_PROF=<dir>: each server process writes a V8 CPU profile there when it exits. */
const PROF = process.env.BENCH_PROF;
const ADDRS_PER_PROC = int('addrs-per-proc', values['addrs-per-proc'], 1, 250);
/**
 * Part B's client source addresses are 127.<SOURCE_NET>.<process>.<chunk>: a second octet
 * of this run's own, so the TIME_WAIT sockets of a previous run (60 s) hold no port this
 * run needs. Node binds a localAddress with port 0 before connecting; Linux looks for a
 * free port for each such bind() among the ports not bound on that address, odd ones
 * first, and that search grows with every port taken: 16,700 ports on one address made
 * the 100,000 opens take six minutes, mostly in the kernel. ~4,200 per address do not.
 */
const SOURCE_NET = 64 + (process.pid % 128);
/** A process may hold 20,000 files here; a client process keeps some headroom. */
const MAX_PER_CLIENT_PROC = 19_000;
if (Math.ceil(N / CLIENT_PROCS) >= MAX_PER_CLIENT_PROC) {
  throw new Error(`${Math.ceil(N / CLIENT_PROCS)} connections per client process: use more --client-procs`);
}
/** Targets the figures are compared against. */
const TARGET_P99_MS = 5;
const TARGET_CROSS_RATE = 50_000;

const root = join(import.meta.dirname, '..');
const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });
const log = (msg: string): void => {
  process.stderr.write(`[cluster] ${msg}\n`);
};

// ---------------------------------------------------------------------------------------
// Processes: every child is remembered and ended, on success, error or a signal.

const children = new Set<ChildProcess>();
/** Workers of a `--workers` primary: not our children, ended by pid if still running. */
const workerPids = new Set<number>();

/** True while `pid` runs and is a uidpush process (so a reused pid is never signalled). */
function isUidpush(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('src/cli/main.ts');
  } catch {
    return false;
  }
}

/** Ends the `--workers` children this bench saw (by pid, only if still uidpush). */
function killWorkers(): void {
  for (const pid of workerPids) {
    if (isUidpush(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  workerPids.clear();
}

function killAll(): void {
  for (const child of children) if (alive(child)) child.kill('SIGKILL');
  children.clear();
  killWorkers();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Forks a bench client (bench/clients/<name>.ts) and waits for its `ready`. */
function startClient(name: string, serialization: 'json' | 'advanced' = 'json'): Promise<ChildProcess> {
  const child = fork(join(import.meta.dirname, 'clients', `${name}.ts`), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization,
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${name}: not ready in 30 s`));
    }, 30_000);
    child.once('message', () => {
      clearTimeout(timer);
      resolve(child);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${String(code)}`));
    });
  });
}

async function stopClient(child: ChildProcess): Promise<void> {
  if (alive(child)) child.kill('SIGKILL');
  await exited(child, 5000);
  children.delete(child);
}

interface ServerProc {
  label: string;
  child: ChildProcess;
  pid: number;
  port: number;
  apiPort: number;
  /** Log lines at warn or above (but the known start-up warnings): `<count> x <level>: <msg>`. */
  warnings: { readonly list: string[] };
  stderr: string[];
}

interface LogLine {
  level?: number;
  msg?: string;
  port?: number;
  api?: { port?: number };
  err?: { type?: string; message?: string };
}

/** Start-up warnings every loopback node without auth and API key logs. */
const EXPECTED_WARNINGS = ['token auth is off', 'server API has no key'];

/**
 * Starts `uidpush serve` through the CLI, on ports 0, and resolves once `listeners`
 * 'listening' lines came (one per process, or per worker).
 */
function startServer(label: string, args: string[], listeners = 1): Promise<ServerProc> {
  const child = spawn(
    process.execPath,
    [
      ...(PROF !== undefined ? ['--cpu-prof', '--cpu-prof-dir', PROF] : []),
      '--import',
      'tsx',
      'src/cli/main.ts',
      'serve',
      '--port',
      '0',
      '--api-port',
      '0',
      '--rate-limit',
      '0',
      '--log-level',
      'info',
      ...args,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${label}: no pid`);
  /** Log lines at warn or above, counted by level, message and error type. */
  const warningCounts = new Map<string, number>();
  const warnings = {
    get list(): string[] {
      return [...warningCounts].map(([k, n]) => `${n} x ${k}`);
    },
  };
  const stderr: string[] = [];
  const ports: { port: number; apiPort: number }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${label}: ${ports.length}/${listeners} 'listening' lines in 120 s; stderr: ${stderr.join('')}`));
    }, 120_000);
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      let entry: LogLine;
      try {
        entry = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      if (entry.msg === 'listening' && ports.length < listeners) {
        ports.push({ port: entry.port ?? 0, apiPort: entry.api?.port ?? 0 });
        if (ports.length === listeners) {
          clearTimeout(timer);
          const distinct = new Set(ports.map((p) => p.port));
          if (distinct.size !== 1) {
            reject(new Error(`${label}: listeners on different ports: ${[...distinct].join(', ')}`));
            return;
          }
          const first = ports[0] ?? { port: 0, apiPort: 0 };
          resolve({ label, child, pid, port: first.port, apiPort: first.apiPort, warnings, stderr });
        }
        return;
      }
      const msg = entry.msg ?? '';
      if ((entry.level ?? 0) >= 40 && !EXPECTED_WARNINGS.some((w) => msg.startsWith(w))) {
        const err = entry.err === undefined ? '' : ` (${entry.err.type ?? 'Error'}${entry.err.message ? `: ${entry.err.message}` : ''})`;
        const key = `${entry.level === 40 ? 'warn' : 'error'}: ${msg}${err}`;
        warningCounts.set(key, (warningCounts.get(key) ?? 0) + 1);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 50) stderr.push(chunk);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${label} exited (${String(code ?? signal)}) before listening; stderr: ${stderr.join('')}`));
    });
  });
}

/** SIGTERM (a graceful stop), then SIGKILL after `graceMs`; also its workers. */
async function stopServer(server: ServerProc, graceMs = 20_000): Promise<void> {
  if (alive(server.child)) server.child.kill('SIGTERM');
  if (!(await exited(server.child, graceMs))) {
    log(`${server.label}: no exit ${graceMs} ms after SIGTERM; SIGKILL`);
    server.child.kill('SIGKILL');
    await exited(server.child, 5000);
  }
  children.delete(server.child);
  killWorkers();
  const warnings = server.warnings.list;
  if (warnings.length > 0) log(`${server.label} logged: ${warnings.join('; ')}`);
}

// ---------------------------------------------------------------------------------------
// Measuring processes from outside: CPU time and RSS from /proc and ps.

/** User + system CPU time of a process, in ms; NaN if it cannot be read (see lib/proc.ts). */
const cpuMs = (pid: number): number => processCpuSeconds(pid) * 1000;

/** Resident set size in MiB (ps), NaN if unreadable. */
function rssMiB(pid: number): number {
  try {
    return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' }).trim()) / 1024;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of a process, NaN if unreadable. */
function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

const fmt = (x: number, d = 1): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';

// ---------------------------------------------------------------------------------------
// A. Targeted push latency and throughput, across two nodes and on one.

interface Step {
  rate: number;
  durationMs: number;
  sent: number;
  delivered: number;
  /** Sent / elapsed time of the sender. */
  achievedRate: number;
  p50: number;
  p99: number;
  max: number;
  /** Largest send backlog of the paced sender, in ms. */
  maxBehindMs: number;
  /** Target connections closed during the step (slow-consumer closes would show here). */
  closed: number;
  /** CPU use of each process during the step, in % of one core. */
  cpu: Record<string, number>;
  /** Redis commands run during the step per push sent, by command (cross-node only). */
  redisPerPush: Record<string, number>;
  ok: boolean;
  why: string;
}

interface LatencyReport {
  mode: 'cross-node' | 'one node';
  fixed: Step;
  /**
   * The search, on fresh nodes: up from 15,000/s if the fixed rate held, else up from
   * the lowest of --lower-rates; it stops at the first rate not sustained.
   */
  steps: Step[];
  /** Highest rate sustained in the search; 0 if none. */
  sustained: number;
  warnings: string[];
}

/** A Redis connection of the orchestrator: the server's pid and its command counts. */
interface RedisProbe {
  pid: number;
  /** Commands Redis has run since it started (INFO commandstats), by command. */
  commands: () => Promise<Map<string, number>>;
  close: () => void;
}

async function redisProbe(url: string): Promise<RedisProbe> {
  const client = createClient({ url });
  client.on('error', () => {
    // reported by the command that fails
  });
  await client.connect();
  const info = await client.info('server');
  return {
    pid: Number(/process_id:(\d+)/.exec(info)?.[1] ?? NaN),
    commands: async () => {
      const stats = await client.info('commandstats');
      const out = new Map<string, number>();
      for (const m of stats.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) out.set(m[1] ?? '', Number(m[2]));
      return out;
    },
    close: () => {
      client.destroy();
    },
  };
}

type StepFn = (rate: number, durationMs: number) => Promise<Step>;

/**
 * Starts fresh nodes (two on Redis, or one alone) and clients, warms up at 1,000/s, runs
 * `body` with a step function, and ends everything, also on error.
 */
async function withNodes<T>(mode: LatencyReport['mode'], body: (step: StepFn) => Promise<T>): Promise<{ result: T; warnings: string[] }> {
  const ns = `bench-cluster-${process.pid}-${Date.now().toString(36)}`;
  const servers: ServerProc[] = [];
  const clients: ChildProcess[] = [];
  let probe: RedisProbe | undefined;
  const lat = (msg: string): void => {
    log(`[${mode}] ${msg}`);
  };
  try {
    if (mode === 'cross-node') {
      const redisArgs = ['--redis', REDIS_URL, '--redis-namespace', ns];
      servers.push(await startServer('node A', redisArgs), await startServer('node B', redisArgs));
    } else {
      servers.push(await startServer('node', []));
    }
    const nodeA = servers[0];
    const nodeB = servers[servers.length - 1];
    if (nodeA === undefined || nodeB === undefined) throw new Error('no server');
    lat(`nodes on ports ${servers.map((s) => s.port).join(', ')}${mode === 'cross-node' ? `, namespace ${ns}` : ''}`);

    const targetProcs = await Promise.all(Array.from({ length: TARGET_PROCS }, () => startClient('paced', 'advanced')));
    clients.push(...targetProcs);
    const senderProc = await startClient('paced', 'advanced');
    clients.push(senderProc);
    const groups = targetProcs.map((_, i) => ({
      prefix: `t${i}_`,
      count: Math.floor(TARGETS / TARGET_PROCS) + (i < TARGETS % TARGET_PROCS ? 1 : 0),
    }));
    await Promise.all(
      targetProcs.map((c, i) =>
        ask(c, 'targets', {
          url: `ws://127.0.0.1:${nodeB.port}`,
          prefix: groups[i]?.prefix,
          count: groups[i]?.count,
          localAddress: `127.0.0.${i + 2}`,
          concurrency: 50,
        }),
      ),
    );
    await ask(senderProc, 'sender', { url: `ws://127.0.0.1:${nodeA.port}`, uid: 'sender', localAddress: '127.0.1.1' });
    // Let node B's subscriptions reach Redis before the first push.
    await sleep(1000);

    probe = mode === 'cross-node' ? await redisProbe(REDIS_URL) : undefined;
    const redis = probe?.pid ?? NaN;
    const watched: [string, number][] = [
      ...servers.map((s): [string, number] => [s.label, s.pid]),
      ...(Number.isFinite(redis) ? [['redis', redis] as [string, number]] : []),
      ['sender', senderProc.pid ?? NaN],
      ...targetProcs.map((c, i): [string, number] => [`targets ${i}`, c.pid ?? NaN]),
    ];

    const step = async (rate: number, durationMs: number): Promise<Step> => {
      await Promise.all(targetProcs.map((c) => ask<Collected>(c, 'collect')));
      // Copying the last step's latencies out costs the targets a GC or two: let it pass.
      await sleep(1000);
      const commands0 = await probe?.commands();
      const cpu0 = watched.map(([, pid]) => cpuMs(pid));
      const t0 = now();
      const run = await ask<RunResult>(senderProc, 'run', { targets: groups, rate, durationMs }, durationMs + 30_000);
      // Wait for the stragglers: until every push is counted, or 3 s without progress.
      let delivered = 0;
      let lastChange = now();
      const deadline = now() + 30_000;
      for (let i = 0; i < 3000 && now() < deadline; i++) {
        const counts = await Promise.all(targetProcs.map((c) => ask<number>(c, 'count')));
        const total = counts.reduce((a, b) => a + b, 0);
        if (total !== delivered) lastChange = now();
        delivered = total;
        if (delivered >= run.sent || now() - lastChange > 3000) break;
        await sleep(20);
      }
      const wall = now() - t0;
      const cpu1 = watched.map(([, pid]) => cpuMs(pid));
      const commands1 = await probe?.commands();
      const redisPerPush: Record<string, number> = {};
      if (commands0 !== undefined && commands1 !== undefined && run.sent > 0) {
        for (const [cmd, calls] of commands1) {
          const perPush = (calls - (commands0.get(cmd) ?? 0)) / run.sent;
          // The orchestrator's own INFO and the nodes' heartbeats are noise, not per push.
          if (perPush >= 0.05 && cmd !== 'info') redisPerPush[cmd] = perPush;
        }
      }
      const got = await Promise.all(targetProcs.map((c) => ask<Collected>(c, 'collect')));
      delivered = got.reduce((a, g) => a + g.delivered, 0);
      const all = new Float64Array(got.reduce((a, g) => a + g.latencies.length, 0));
      let at = 0;
      for (const g of got) {
        all.set(g.latencies, at);
        at += g.latencies.length;
      }
      // Stalls: the pushes sent in each 100 ms window of the step, and the worst of them.
      const windows = new Map<number, number>();
      for (const g of got) {
        for (let i = 0; i < g.latencies.length; i++) {
          const w = Math.floor(((g.sentAt[i] ?? 0) - t0) / 100);
          windows.set(w, Math.max(windows.get(w) ?? 0, g.latencies[i] ?? 0));
        }
      }
      const worst = [...windows].sort((a, b) => b[1] - a[1]).slice(0, 3);
      const stalls = worst.map(([w, ms]) => `${ms.toFixed(0)} ms at +${(w / 10).toFixed(1)} s`).join(', ');
      all.sort();
      const sorted = Array.from(all);
      const cpu: Record<string, number> = {};
      watched.forEach(([name], i) => {
        const key = name.startsWith('targets') ? 'targets' : name;
        cpu[key] = (cpu[key] ?? 0) + (((cpu1[i] ?? NaN) - (cpu0[i] ?? NaN)) / wall) * 100;
      });
      const p99 = quantile(sorted, 0.99);
      const closed = got.reduce((a, g) => a + g.closed, 0);
      const achievedRate = (run.sent / Math.max(run.elapsedMs, durationMs)) * 1000;
      const expected = Math.round((rate * durationMs) / 1000);
      const why =
        delivered < run.sent
          ? `${run.sent - delivered} of ${run.sent} not delivered`
          : run.sent < expected * 0.99 || achievedRate < rate * 0.98
            ? `sender reached only ${Math.round(achievedRate)}/s`
            : !(p99 <= MAX_P99)
              ? `p99 ${p99.toFixed(1)} ms > ${MAX_P99} ms`
              : closed > 0
                ? `${closed} target connections closed`
                : '';
      const errors = got.flatMap((g) => g.errors);
      if (errors.length > 0) lat(`client errors: ${errors.slice(0, 5).join(' | ')}`);
      const result: Step = {
        rate,
        durationMs,
        sent: run.sent,
        delivered,
        achievedRate,
        p50: quantile(sorted, 0.5),
        p99,
        max: sorted[sorted.length - 1] ?? NaN,
        maxBehindMs: run.maxBehindMs,
        closed,
        cpu,
        redisPerPush,
        ok: why === '',
        why,
      };
      lat(
        `${rate}/s x ${durationMs / 1000} s: ${delivered}/${run.sent} delivered, sender ${Math.round(achievedRate)}/s ` +
          `(max backlog ${run.maxBehindMs.toFixed(1)} ms, ${run.maxBuffered} B buffered); ` +
          `p50 ${result.p50.toFixed(2)} p99 ${p99.toFixed(2)} max ${result.max.toFixed(1)} ms (worst 100 ms windows: ${stalls}); cpu ` +
          Object.entries(cpu)
            .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
            .join(', ') +
          (Object.keys(redisPerPush).length > 0
            ? `; redis commands per push: ${Object.entries(redisPerPush)
                .map(([k, v]) => `${k} ${v.toFixed(2)}`)
                .join(', ')}`
            : '') +
          (why === '' ? '' : `; NOT SUSTAINED: ${why}`),
      );
      return result;
    };

    // Warm-up, not reported: the first second at a new, higher rate pays for JIT tiering
    // and buffer growth in every process (a 100-300 ms stall at +0.3 s when the fixed run
    // followed 1,000/s directly).
    const warm = Math.max(1000, Math.round(RATE / 2));
    lat(`warm-up: 1,000/s for 2 s, ${warm.toLocaleString('en-US')}/s for 3 s`);
    await step(1000, 2000);
    await step(warm, 3000);
    await sleep(2000);
    const result = await body(step);
    // Read once the nodes stopped (below), so shutdown's own lines count too.
    return {
      result,
      get warnings(): string[] {
        return servers.flatMap((s) => s.warnings.list.map((w) => `${s.label}: ${w}`));
      },
    };
  } finally {
    probe?.close();
    for (const c of clients) await stopClient(c);
    for (const s of servers) await stopServer(s);
    if (mode === 'cross-node') {
      try {
        const n = await deleteNamespace(REDIS_URL, ns);
        lat(`deleted ${n} keys of namespace ${ns}`);
      } catch (err) {
        lat(`could not delete namespace ${ns}: ${String(err)}`);
      }
    }
  }
}

async function latencyPart(mode: LatencyReport['mode']): Promise<LatencyReport> {
  const first = await withNodes(mode, (step) => step(RATE, DURATION_MS));
  const fixed = first.result;
  // The search runs on fresh nodes, so a failed fixed-rate run leaves nothing behind.
  // Up from 15,000/s when the fixed rate held; else up from below it. Each rate is
  // tried only after every lower one held, so no step starts on another's backlog.
  const rates = fixed.ok ? RATES : LOWER_RATES.filter((r) => r < RATE);
  await sleep(3000);
  const second = await withNodes(mode, async (step) => {
    const steps: Step[] = [];
    let sustained = 0;
    for (const rate of rates) {
      await sleep(2000);
      const s = await step(rate, STEP_MS);
      steps.push(s);
      if (!s.ok) break;
      sustained = rate;
    }
    return { steps, sustained };
  });
  return {
    mode,
    fixed,
    steps: second.result.steps,
    sustained: second.result.sustained,
    warnings: [...first.warnings, ...second.warnings],
  };
}

function latencyTables(reports: LatencyReport[]): string {
  const byMode = (m: LatencyReport['mode']): LatencyReport | undefined => reports.find((r) => r.mode === m);
  const cross = byMode('cross-node');
  const one = byMode('one node');
  const cols = [cross, one].filter((r): r is LatencyReport => r !== undefined);
  const cell = (r: LatencyReport, f: (r: LatencyReport) => string): string => f(r);
  const row = (label: string, f: (r: LatencyReport) => string, target: string): string =>
    `| ${label} | ${cols.map((r) => cell(r, f)).join(' | ')} | ${target} |`;
  const lines = [
    `| figure | ${cols.map((r) => (r.mode === 'cross-node' ? 'two nodes on Redis (A -> B)' : 'one node, no Redis')).join(' | ')} | target |`,
    `|---|${cols.map(() => '---:').join('|')}|---|`,
    row(`p50 latency at ${RATE.toLocaleString('en-US')}/s, ${DURATION_MS / 1000} s (ms)`, (r) => fmt(r.fixed.p50, 2), ''),
    row(`p99 latency at ${RATE.toLocaleString('en-US')}/s (ms)`, (r) => fmt(r.fixed.p99, 2), `<= ${TARGET_P99_MS} ms (cross-node)`),
    row(`max latency at ${RATE.toLocaleString('en-US')}/s (ms)`, (r) => fmt(r.fixed.max, 1), ''),
    row(
      `delivered / sent at ${RATE.toLocaleString('en-US')}/s`,
      (r) => `${r.fixed.delivered.toLocaleString('en-US')} / ${r.fixed.sent.toLocaleString('en-US')}`,
      'all',
    ),
    row(
      `highest sustained rate (pushes/s, ${STEP_MS / 1000} s steps)`,
      (r) =>
        r.sustained > 0 ? r.sustained.toLocaleString('en-US') : `< ${Math.min(...r.steps.map((s) => s.rate)).toLocaleString('en-US')}`,
      `>= ${TARGET_CROSS_RATE.toLocaleString('en-US')} (cross-node)`,
    ),
    row(
      'first rate not sustained',
      (r) => {
        const failed = r.steps.find((s) => !s.ok);
        return failed === undefined ? 'none failed' : `${failed.rate.toLocaleString('en-US')}: ${failed.why}`;
      },
      '',
    ),
    row(
      `Redis commands per push at ${RATE.toLocaleString('en-US')}/s`,
      (r) =>
        Object.keys(r.fixed.redisPerPush).length === 0
          ? '-'
          : Object.entries(r.fixed.redisPerPush)
              .map(([k, v]) => `${v.toFixed(2)} ${k.toUpperCase()}`)
              .join(', '),
      '',
    ),
  ];
  const stepLines = cols.flatMap((r) => [
    '',
    `${r.mode === 'cross-node' ? 'Two nodes on Redis' : 'One node'}, every step (CPU in % of one core, over the step and its drain):`,
    '',
    '| rate (/s) | s | delivered / sent | p50 (ms) | p99 (ms) | max (ms) | CPU | sustained |',
    '|---:|---:|---:|---:|---:|---:|---|---|',
    ...[r.fixed, ...r.steps].map(
      (s) =>
        `| ${s.rate.toLocaleString('en-US')} | ${s.durationMs / 1000} | ${s.delivered.toLocaleString('en-US')} / ${s.sent.toLocaleString('en-US')} | ` +
        `${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${fmt(s.max, 1)} | ` +
        `${Object.entries(s.cpu)
          .map(([k, v]) => `${k} ${v.toFixed(0)}`)
          .join(', ')} | ${s.ok ? 'yes' : `no: ${s.why}`} |`,
    ),
  ]);
  const logLines = cols
    .filter((r) => r.warnings.length > 0)
    .map((r) => `Server log lines at warn or above (${r.mode}): ${r.warnings.join('; ')}.`);
  return [...lines, ...stepLines, ...(logLines.length > 0 ? ['', ...logLines] : [])].join('\n');
}

// ---------------------------------------------------------------------------------------
// B. 100,000 connections through `serve --workers`.

interface BroadcastResult {
  seq: number;
  received: number;
  ms: number;
  p50: number;
  p99: number;
  /** CPU time of the primary and the workers, from send to last delivery (+ <= 100 ms). */
  serverCpuMs: number;
  /** CPU time of the client processes over the same time. */
  clientCpuMs: number;
}

interface WorkersReport {
  target: number;
  opened: number;
  errors: number;
  errorMessages: string[];
  openMs: number;
  serverConnections: number;
  broadcasts: BroadcastResult[];
  medianMs: number;
  primaryRssMiB: number;
  workerRssMiB: number[];
  workerFds: number[];
  clientRssMiB: number[];
  warnings: string[];
}

async function workersPart(): Promise<WorkersReport> {
  const wlog = (msg: string): void => {
    log(`[workers] ${msg}`);
  };
  let primary: ServerProc | undefined;
  const clients: ChildProcess[] = [];
  let control: WebSocket | undefined;
  try {
    primary = await startServer('primary', ['--workers', String(WORKERS)], WORKERS);
    const workers = childPids(primary.pid);
    for (const pid of workers) workerPids.add(pid);
    wlog(`primary ${primary.pid}, workers ${workers.join(', ')}, port ${primary.port}`);
    const url = `ws://127.0.0.1:${primary.port}`;

    clients.push(...(await Promise.all(Array.from({ length: CLIENT_PROCS }, () => startClient('idle')))));
    const shares = clients.map((_, i) => Math.floor(N / CLIENT_PROCS) + (i < N % CLIENT_PROCS ? 1 : 0));
    const t0 = now();
    // Progress, from the workers' open files, while the clients open.
    // Progress while the clients open: files the workers hold, and who uses the CPU.
    const groupsOfPids: [string, number[]][] = [
      ['primary', [primary.pid]],
      ['workers', workers],
      ['clients', clients.map((c) => c.pid ?? NaN)],
    ];
    const cpuOfGroups = (): number[] => groupsOfPids.map(([, pids]) => pids.map(cpuMs).reduce((a, b) => a + b, 0));
    let last = { at: now(), cpu: cpuOfGroups(), box: machineCpu(), fds: 0 };
    const progress = setInterval(() => {
      const fds = workers.map(openFds).reduce((a, b) => a + b, 0);
      const at = now();
      const cpu = cpuOfGroups();
      const box = machineCpu();
      const pct = (a: number, b: number): string => `${(((a - b) / (at - last.at)) * 100).toFixed(0)}%`;
      const shares = machinePct(last.box, box);
      const share = (k: 'user' | 'system' | 'irq' | 'idle'): string => `${(shares[k] / cpus().length).toFixed(0)}%`;
      wlog(
        `${((at - t0) / 1000).toFixed(0)} s: workers hold ${fds} files (+${(((fds - last.fds) / (at - last.at)) * 1000).toFixed(0)}/s); cpu ` +
          groupsOfPids.map(([name], i) => `${name} ${pct(cpu[i] ?? NaN, last.cpu[i] ?? NaN)}`).join(', ') +
          `; box: user ${share('user')}, system ${share('system')}, irq + softirq ${share('irq')}, idle ${share('idle')}`,
      );
      last = { at, cpu, box, fds };
    }, 10_000);
    let opened: { opened: number; errors: number }[];
    try {
      // Each client process opens its share in ADDRS_PER_PROC sequential chunks, one
      // source address each (see SOURCE_NET).
      opened = await Promise.all(
        clients.map(async (c, i) => {
          const sum = { opened: 0, errors: 0 };
          const share = shares[i] ?? 0;
          for (let j = 0; j < ADDRS_PER_PROC; j++) {
            const count = Math.floor(share / ADDRS_PER_PROC) + (j < share % ADDRS_PER_PROC ? 1 : 0);
            const r = await ask<{ opened: number; errors: number }>(
              c,
              'open',
              { url, prefix: `c${i}_${j}_`, count, localAddress: `127.${SOURCE_NET}.${i + 1}.${j + 1}`, concurrency: 64 },
              1_200_000,
            );
            sum.opened += r.opened;
            sum.errors += r.errors;
          }
          return sum;
        }),
      );
    } finally {
      clearInterval(progress);
    }
    const openMs = now() - t0;
    const total = opened.reduce((a, o) => a + o.opened, 0);
    const errors = opened.reduce((a, o) => a + o.errors, 0);
    const errorMessages = (await Promise.all(clients.map((c) => ask<string[]>(c, 'errors')))).flat();
    wlog(
      `opened ${total}/${N} in ${(openMs / 1000).toFixed(1)} s, ${errors} errors${errorMessages.length > 0 ? `: ${errorMessages.slice(0, 5).join(' | ')}` : ''}`,
    );

    const ws = new WebSocket(url, { perMessageDeflate: false });
    control = ws;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error('control: no login in 30 s'));
      }, 30_000);
      ws.once('open', () => {
        ws.send('control');
      });
      ws.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    await sleep(2000);
    let serverConnections = NaN;
    try {
      const res = await fetch(`http://127.0.0.1:${primary.apiPort}/v1/stats`, { signal: AbortSignal.timeout(10_000) });
      serverConnections = ((await res.json()) as { connections?: number }).connections ?? NaN;
    } catch (err) {
      wlog(`GET /v1/stats failed: ${String(err)}`);
    }
    const workerFds = workers.map(openFds);
    wlog(`server: ${serverConnections} connections (GET /v1/stats); worker open files ${workerFds.join(', ')}`);

    const broadcasts: BroadcastResult[] = [];
    for (let seq = 0; seq < BROADCASTS; seq++) {
      await sleep(1000);
      const cpu0 = cpuOfGroups();
      const sent = now();
      ws.send(`all:b|${seq}|${sent}`);
      let received = 0;
      let last = 0;
      const latencies: number[] = [];
      const deadline = now() + 60_000;
      for (let i = 0; i < 6000 && received < total && now() < deadline; i++) {
        await sleep(100);
        const reports = await Promise.all(
          clients.map((c) => ask<{ seq: number; count: number; last: number; latencies: number[] }[]>(c, 'broadcasts')),
        );
        for (const r of reports.flat()) {
          if (r.seq !== seq) continue;
          received += r.count;
          last = Math.max(last, r.last);
          for (const l of r.latencies) latencies.push(l);
        }
      }
      const cpu1 = cpuOfGroups();
      latencies.sort((a, b) => a - b);
      const used = (i: number): number => (cpu1[i] ?? NaN) - (cpu0[i] ?? NaN);
      const b: BroadcastResult = {
        seq,
        received,
        ms: last - sent,
        p50: quantile(latencies, 0.5),
        p99: quantile(latencies, 0.99),
        serverCpuMs: used(0) + used(1),
        clientCpuMs: used(2),
      };
      broadcasts.push(b);
      wlog(
        `broadcast ${seq}: ${received}/${total} in ${b.ms.toFixed(0)} ms (p50 ${b.p50.toFixed(0)}, p99 ${b.p99.toFixed(0)} ms); ` +
          `cpu: server ${b.serverCpuMs.toFixed(0)} ms, clients ${b.clientCpuMs.toFixed(0)} ms`,
      );
    }
    const primaryRssMiB = rssMiB(primary.pid);
    const workerRssMiB = workers.map(rssMiB);
    const clientRssMiB = clients.map((c) => rssMiB(c.pid ?? NaN));
    wlog(
      `RSS MiB: primary ${primaryRssMiB.toFixed(0)}, workers ${workerRssMiB.map((r) => r.toFixed(0)).join(', ')}, clients ${clientRssMiB.map((r) => r.toFixed(0)).join(', ')}`,
    );
    return {
      target: N,
      opened: total,
      errors,
      errorMessages,
      openMs,
      serverConnections,
      broadcasts,
      medianMs: quantile(
        broadcasts.map((b) => b.ms).sort((a, b) => a - b),
        0.5,
      ),
      primaryRssMiB,
      workerRssMiB,
      workerFds,
      clientRssMiB,
      warnings: primary.warnings.list,
    };
  } finally {
    control?.terminate();
    for (const c of clients) await stopClient(c);
    if (primary !== undefined) await stopServer(primary);
  }
}

function workersTable(r: WorkersReport): string {
  const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const lines = [
    '| figure | value | target |',
    '|---|---:|---|',
    `| connections opened (idle clients, + 1 control) | ${r.opened.toLocaleString('en-US')} of ${r.target.toLocaleString('en-US')} | ${r.target.toLocaleString('en-US')} |`,
    `| errors while opening | ${r.errors} | 0 |`,
    `| time to open them (${CLIENT_PROCS} client processes x ${ADDRS_PER_PROC} source addresses, 64 in flight each) | ${fmt(r.openMs / 1000, 1)} s | |`,
    `| connections the cluster counts (GET /v1/stats) | ${Number.isFinite(r.serverConnections) ? r.serverConnections.toLocaleString('en-US') : '-'} | |`,
    ...r.broadcasts.map(
      (b) =>
        `| broadcast ${b.seq + 1}: send to last delivery (delivery p50 / p99; CPU server / clients) | ` +
        `${fmt(b.ms, 0)} ms (${fmt(b.p50, 0)} / ${fmt(b.p99, 0)} ms; ${fmt(b.serverCpuMs, 0)} / ${fmt(b.clientCpuMs, 0)} ms), ` +
        `${b.received.toLocaleString('en-US')} reached | |`,
    ),
    `| broadcast: median of ${r.broadcasts.length} | ${fmt(r.medianMs, 0)} ms | |`,
    `| RSS: primary | ${fmt(r.primaryRssMiB, 0)} MiB | |`,
    `| RSS: workers (each) | ${r.workerRssMiB.map((x) => fmt(x, 0)).join(', ')} MiB | |`,
    `| RSS: primary + workers | ${fmt(r.primaryRssMiB + sum(r.workerRssMiB), 0)} MiB | |`,
    `| open files per worker (limit 20,000) | ${r.workerFds.map((x) => x.toLocaleString('en-US')).join(', ')} | |`,
    `| RSS: client processes (each) | ${r.clientRssMiB.map((x) => fmt(x, 0)).join(', ')} MiB | |`,
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------

const machine = describeMachine();
const out: string[] = [`machine: ${machine}`];
const json: { latency?: LatencyReport[]; workers?: WorkersReport } = {};
try {
  if (PART === 'latency' || PART === 'all') {
    json.latency = [];
    if (ONLY !== 'one-node') json.latency.push(await latencyPart('cross-node'));
    if (ONLY !== 'cross-node') json.latency.push(await latencyPart('one node'));
    out.push(
      '',
      `### A. Targeted pushes: ${TARGETS.toLocaleString('en-US')} targets, one paced sender, p99 bound ${MAX_P99} ms`,
      '',
      latencyTables(json.latency),
    );
  }
  if (PART === 'workers' || PART === 'all') {
    if (PART === 'all') await sleep(3000); // let the kernel reap the sockets of part A
    json.workers = await workersPart();
    out.push('', `### B. ${N.toLocaleString('en-US')} clients through \`serve --workers ${WORKERS}\``, '', workersTable(json.workers));
    if (json.workers.errorMessages.length > 0) out.push('', `errors: ${json.workers.errorMessages.join('; ')}`);
    if (json.workers.warnings.length > 0) out.push('', `Server log lines at warn or above: ${json.workers.warnings.join('; ')}.`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (values.json !== undefined) await writeFile(values.json, JSON.stringify(json, null, 2));
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (out.length > 1) process.stdout.write(`${out.join('\n')}\n`);
  process.exitCode = 1;
} finally {
  killAll();
}
process.exit(process.exitCode ?? 0);

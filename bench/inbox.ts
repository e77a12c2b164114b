/**
 * The per-user inbox under load (bench/README.md, "Inbox"):
 *
 *  1. push: targeted pushes/s delivered, inbox off / on + durable / on + ephemeral, memory
 *     engine and Redis engine: `--senders` processes, each one sender connection and
 *     `--targets` target connections (v1, and the seed protocol for off / durable),
 *     `--inflight` pushes outstanding; `--warmup` s, then `--duration` s per mode;
 *  2. storm: `--storm-uids` v1 devices (one per uid) in `--storm-procs` processes connect
 *     once, all disconnect, the server retains `--per-uid` pushes to each (`server.push`,
 *     timed apart), then all reconnect at once with `since`: first reconnect to the last
 *     device having all its messages, and every device's offsets checked (since+1.. in
 *     order); with the memory engine, server heap / RSS after GC before and after the fill
 *     (bytes per retained message);
 *  3. workers: `uidpush serve --workers 2` (the CLI, through tsx), inbox off, and with
 *     `--inbox` durable / ephemeral, the same push load.
 *
 * Usage: npm run bench:inbox -- [--part push,storm,workers] [--engines memory,redis]
 *          [--senders 4] [--targets 1000] [--inflight 64] [--duration 8] [--warmup 2] [--repeat 1]
 *          [--storm-uids 10000] [--storm-procs 2] [--per-uid 100] [--bytes 100]
 *          [--fill-batch memory:1,redis:100] [--fill-concurrency 32] [--reconnect-concurrency 0]
 *          [--redis redis://127.0.0.1:6379] [--json out.json]
 * BENCH_PROF=<dir> writes a V8 CPU profile of each library server (bench/servers/inbox.ts).
 *
 * Every loop is bounded in count and time; every process it starts, it ends by its pid.
 * The Redis engine runs in a namespace of its own, whose keys are deleted after each server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createClient } from '@redis/client';
import { deleteNamespace } from './lib/redis.js';
import { ask, quantile } from './lib/ipc.js';
import {
  alive,
  CLK_TCK,
  describeMachine,
  exited,
  forkReady,
  killStarted,
  machineCpu,
  machinePct,
  processCpuSeconds,
  stopChild,
} from './lib/proc.js';

const { values } = parseArgs({
  options: {
    part: { type: 'string', default: 'push,storm,workers' },
    engines: { type: 'string', default: 'memory,redis' },
    senders: { type: 'string', default: '4' },
    targets: { type: 'string', default: '1000' },
    inflight: { type: 'string', default: '64' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    repeat: { type: 'string', default: '1' },
    'storm-uids': { type: 'string', default: '10000' },
    'storm-procs': { type: 'string', default: '2' },
    'per-uid': { type: 'string', default: '100' },
    bytes: { type: 'string', default: '100' },
    'fill-batch': { type: 'string', default: 'memory:1,redis:100' },
    'fill-concurrency': { type: 'string', default: '32' },
    'reconnect-concurrency': { type: 'string', default: '0' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    json: { type: 'string' },
  },
});
const PARTS = new Set(values.part.split(','));
const ENGINES = values.engines.split(',').filter((e) => e === 'memory' || e === 'redis');
const SENDERS = Number(values.senders);
const TARGETS = Number(values.targets);
const INFLIGHT = Number(values.inflight);
const DURATION_MS = Number(values.duration) * 1000;
const WARMUP_MS = Number(values.warmup) * 1000;
const REPEAT = Number(values.repeat);
const STORM_UIDS = Number(values['storm-uids']);
const STORM_PROCS = Number(values['storm-procs']);
const PER_UID = Number(values['per-uid']);
const BYTES = Number(values.bytes);
/** Uids per `server.push` call of the fill, per engine (`memory:1,redis:100`, or one number for both). */
const fillBatch = (engine: 'memory' | 'redis'): number => {
  const spec = values['fill-batch'];
  if (/^\d+$/.test(spec)) return Number(spec);
  const m = new RegExp(`${engine}:(\\d+)`).exec(spec);
  return Number(m?.[1] ?? 1);
};
const FILL_CONCURRENCY = Number(values['fill-concurrency']);
const RECONNECT_CONCURRENCY = Number(values['reconnect-concurrency']);
const REDIS_URL = values.redis;
const PROF = process.env.BENCH_PROF;

const here = import.meta.dirname;
const root = join(here, '..');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const log = (msg: string): void => {
  process.stderr.write(`[inbox ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
};
const fmt = (x: number, d = 0): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-';

/** The Redis server's pid (INFO server), to read its CPU; 0 when not known. */
async function redisPid(): Promise<number> {
  const client = createClient({ url: REDIS_URL });
  client.on('error', () => {
    // reported by connect()
  });
  try {
    await client.connect();
    const info = await client.info('server');
    return Number(/process_id:(\d+)/.exec(info)?.[1] ?? 0);
  } catch {
    return 0;
  } finally {
    client.destroy();
  }
}
let REDIS_PID = 0;

/** TcpExt ListenOverflows of /proc/net/netstat (the whole machine): SYNs dropped on a full accept queue. */
function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'latin1').split('\n');
    const i = lines.findIndex((l) => l.startsWith('TcpExt:'));
    const names = (lines[i] ?? '').split(' ');
    const vals = (lines[i + 1] ?? '').split(' ');
    return Number(vals[names.indexOf('ListenOverflows')] ?? NaN);
  } catch {
    return NaN;
  }
}

interface LibServer {
  kind: 'lib';
  child: ChildProcess;
  port: number;
  ns?: string;
}
interface CliServer {
  kind: 'cli';
  child: ChildProcess;
  port: number;
}
type Server = LibServer | CliServer;

/** bench/servers/inbox.ts with `opts`; a Redis engine gets a namespace of its own. */
async function startLib(engine: 'memory' | 'redis', opts: Record<string, unknown>): Promise<LibServer> {
  const ns = engine === 'redis' ? `bench-inbox-${randomBytes(4).toString('hex')}` : undefined;
  const all = ns === undefined ? opts : { ...opts, redis: REDIS_URL, redisNamespace: ns };
  const { child, ready } = await forkReady(join(here, 'servers', 'inbox.ts'), {
    env: { BENCH_OPTS: JSON.stringify(all) },
    execArgv: ['--expose-gc', '--max-old-space-size=4096', ...(PROF !== undefined ? ['--cpu-prof', '--cpu-prof-dir', PROF] : [])],
  });
  log(`server pid ${String(child.pid)}: ${engine}, ${JSON.stringify(opts)}`);
  return { kind: 'lib', child, port: ready.port ?? 0, ...(ns === undefined ? {} : { ns }) };
}

/** `uidpush serve --workers <n>` through tsx; resolves once each worker logged 'listening'. */
function startCli(args: string[], listeners: number): Promise<CliServer> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--rate-limit', '0', '--log-level', 'info', ...args],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr: string[] = [];
  const ports: number[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`serve: ${ports.length}/${listeners} 'listening' lines in 120 s; ${stderr.join('')}`));
    }, 120_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: { msg?: string; port?: number; level?: number };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'listening' && ports.length < listeners) {
        ports.push(entry.port ?? 0);
        if (ports.length === listeners) {
          clearTimeout(timer);
          resolve({ kind: 'cli', child, port: ports[0] ?? 0 });
        }
      } else if ((entry.level ?? 0) >= 50) log(`serve: ${line.slice(0, 300)}`);
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (stderr.length < 50) stderr.push(chunk);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${String(code ?? signal)}) before listening; ${stderr.join('')}`));
    });
  });
}

/** A process and its children (the workers of `serve --workers`). */
function pidTree(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids];
  } catch {
    return [pid];
  }
}
const treeCpu = (pids: number[]): number => pids.reduce((a, p) => a + processCpuSeconds(p), 0);

async function stopServer(server: Server): Promise<void> {
  if (server.kind === 'lib') {
    // A clean exit (IPC closed) lets --cpu-prof write its profile.
    const done = exited(server.child, 10_000);
    if (alive(server.child)) server.child.disconnect();
    if (!(await done)) await stopChild(server.child);
    await stopChild(server.child);
    if (server.ns !== undefined) log(`deleted ${await deleteNamespace(REDIS_URL, server.ns)} keys of namespace ${server.ns}`);
  } else {
    const pids = pidTree(server.child.pid ?? 0);
    if (alive(server.child)) server.child.kill('SIGTERM');
    if (!(await exited(server.child, 20_000))) server.child.kill('SIGKILL');
    await exited(server.child, 5000);
    for (const pid of pids.slice(1)) {
      try {
        process.kill(pid, 0);
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await sleep(1000);
}

// ---------------------------------------------------------------------------------------
// 1 and 3: targeted pushes

interface PushRun {
  sent: number;
  delivered: number;
  elapsedMs: number;
  latencies: number[];
  errors: number;
  errorSamples: string[];
}
interface PushFigure {
  label: string;
  pushesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuPct: number;
  serverCpuUsPerPush: number;
  clientsCpuPct: number;
  /** Of a core, when the server runs on Redis (the whole Redis server: other users too). */
  redisCpuPct: number;
  machineBusyPct: number;
  /** Busy % of the machine (of 200) not spent by the server, the senders or Redis. */
  othersPct: number;
  sent: number;
  delivered: number;
  errors: number;
}

/** Opens the senders' connections on `server`; `run` then runs one mode. */
async function pushLoad(server: Server, protocol: 'v1' | 'seed', addrBase: number) {
  const url = `ws://127.0.0.1:${server.port}`;
  const senders = await Promise.all(Array.from({ length: SENDERS }, () => forkReady(join(here, 'clients', 'inbox-sender.ts'))));
  const run = Math.random().toString(36).slice(2, 6);
  await Promise.all(
    senders.map((s, i) =>
      ask(s.child, 'open', {
        url,
        protocol,
        sender: `snd${run}${i}`,
        targetPrefix: `t${run}${i}_`,
        targets: TARGETS,
        localAddress: `127.1.${addrBase}.${i + 1}`,
      }),
    ),
  );
  const pids = server.child.pid === undefined ? [] : pidTree(server.child.pid);
  const once = (durationMs: number, delivery?: string) =>
    Promise.all(
      senders.map((s) =>
        ask<PushRun>(s.child, 'run', { durationMs, inflight: INFLIGHT, maxPushes: 5_000_000, ...(delivery ? { delivery } : {}) }),
      ),
    );
  return {
    async measure(label: string, delivery?: string): Promise<PushFigure> {
      await once(WARMUP_MS, delivery);
      await sleep(300);
      const senderPids = senders.map((x) => x.child.pid ?? 0);
      const cpu0 = treeCpu(pids);
      const s0 = treeCpu(senderPids);
      const r0 = REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN;
      const m0 = machineCpu();
      const runs = await once(DURATION_MS, delivery);
      const m1 = machineCpu();
      const cpu1 = treeCpu(pids);
      const s1 = treeCpu(senderPids);
      const r1 = REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN;
      const machine = machinePct(m0, m1);
      const delivered = runs.reduce((a, r) => a + r.delivered, 0);
      const sent = runs.reduce((a, r) => a + r.sent, 0);
      const errors = runs.reduce((a, r) => a + r.errors, 0);
      const elapsed = Math.max(...runs.map((r) => r.elapsedMs));
      const lat = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
      const cpuS = cpu1 - cpu0;
      const f: PushFigure = {
        label,
        pushesPerSec: (delivered / elapsed) * 1000,
        p50Ms: quantile(lat, 0.5),
        p99Ms: quantile(lat, 0.99),
        serverCpuPct: (cpuS / (elapsed / 1000)) * 100,
        serverCpuUsPerPush: (cpuS * 1e6) / delivered,
        clientsCpuPct: ((s1 - s0) / (elapsed / 1000)) * 100,
        redisCpuPct: ((r1 - r0) / (elapsed / 1000)) * 100,
        machineBusyPct: machine.busy,
        othersPct:
          machine.busy - ((cpuS + s1 - s0 + (server.kind === 'lib' && server.ns !== undefined ? r1 - r0 : 0)) / (elapsed / 1000)) * 100,
        sent,
        delivered,
        errors,
      };
      const samples = runs.flatMap((r) => r.errorSamples);
      log(
        `${label}: ${delivered}/${sent} in ${elapsed.toFixed(0)} ms = ${fmt(f.pushesPerSec)}/s, p50 ${f.p50Ms.toFixed(2)} p99 ${f.p99Ms.toFixed(2)} ms, ` +
          `server ${f.serverCpuPct.toFixed(0)}% (${f.serverCpuUsPerPush.toFixed(1)} µs/push), senders ${f.clientsCpuPct.toFixed(0)}%, redis ${f.redisCpuPct.toFixed(0)}%, machine ${f.machineBusyPct.toFixed(0)}% (not the bench's ${f.othersPct.toFixed(0)}%), errors ${errors}${samples.length ? ` ${samples[0] ?? ''}` : ''}`,
      );
      return f;
    },
    async close(): Promise<void> {
      for (const s of senders) await stopChild(s.child);
    },
  };
}

/**
 * Ephemeral and durable, alternated `--repeat` times on the same server and connections;
 * each reported as the run with the median pushes/s (the box is shared: alternating keeps
 * a burst of other load from landing on one mode only).
 */
async function alternate(load: Awaited<ReturnType<typeof pushLoad>>, label: string): Promise<PushFigure[]> {
  const runs: Record<'ephemeral' | 'durable', PushFigure[]> = { ephemeral: [], durable: [] };
  for (let i = 0; i < REPEAT; i++) {
    for (const kind of ['ephemeral', 'durable'] as const) runs[kind].push(await load.measure(`${label}, ${kind}`, kind));
  }
  const median = (figs: PushFigure[]): PushFigure => {
    const sorted = [...figs].sort((a, b) => a.pushesPerSec - b.pushesPerSec);
    const m = sorted[Math.floor((sorted.length - 1) / 2)] as PushFigure;
    return REPEAT > 1 ? { ...m, label: `${m.label} (median of ${REPEAT}: ${figs.map((f) => fmt(f.pushesPerSec)).join(' / ')})` } : m;
  };
  return [median(runs.ephemeral), median(runs.durable)];
}

async function pushPart(engine: 'memory' | 'redis'): Promise<PushFigure[]> {
  const out: PushFigure[] = [];
  const inboxOpts = { inbox: true, inboxSize: 1000 };
  for (const inbox of [false, true]) {
    for (const protocol of ['v1', 'seed'] as const) {
      const server = await startLib(engine, inbox ? inboxOpts : {});
      const load = await pushLoad(server, protocol, protocol === 'v1' ? 1 : 2);
      if (!inbox) out.push(await load.measure(`${engine}, ${protocol}, inbox off`));
      else if (protocol === 'seed') out.push(await load.measure(`${engine}, seed, inbox on (durable by default)`));
      else out.push(...(await alternate(load, `${engine}, v1, inbox on`)));
      await load.close();
      await stopServer(server);
    }
  }
  return out;
}

async function workersPart(): Promise<PushFigure[]> {
  const out: PushFigure[] = [];
  for (const inbox of [false, true]) {
    const server = await startCli(['--workers', '2', ...(inbox ? ['--inbox'] : [])], 2);
    const load = await pushLoad(server, 'v1', 3);
    if (!inbox) out.push(await load.measure('--workers 2, v1, inbox off'));
    else out.push(...(await alternate(load, '--workers 2 --inbox, v1')));
    await load.close();
    await stopServer(server);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// 2: replay storm (and 3: memory per retained message)

interface ConnectResult {
  startedAt: number;
  firstOpenAt: number;
  lastWelcomeAt: number;
  lastCompleteAt: number;
  opened: number;
  complete: number;
  errors: number;
  violations: number;
  wrongMissed: number;
  wrongEpoch: number;
  messages: number;
  errorSamples: string[];
  violationSamples: string[];
}
interface StormFigure {
  engine: string;
  devices: number;
  fillMs: number;
  fillPerSec: number;
  fillFailed: number;
  reconnectToLastMs: number;
  reconnectToLastWelcomeMs: number;
  complete: number;
  messages: number;
  violations: number;
  wrongMissed: number;
  wrongEpoch: number;
  errors: number;
  serverCpuS: number;
  clientsCpuS: number;
  /** The whole Redis server's (other users too). */
  redisCpuS: number;
  /** ListenOverflows during the reconnect (machine-wide). */
  overflows: number;
  machineBusyPct: number;
  machineSystemPct: number;
  /** Busy % of the machine (of 200) not spent by the server or the device processes. */
  othersPct: number;
  heapPerMsgB?: number;
  rssPerMsgB?: number;
  heapBeforeMiB?: number;
  heapAfterMiB?: number;
  rssBeforeMiB?: number;
  rssAfterMiB?: number;
}

async function stormPart(engine: 'memory' | 'redis'): Promise<StormFigure> {
  const server = await startLib(engine, { inbox: true, inboxSize: Math.max(1000, PER_UID) });
  const url = `ws://127.0.0.1:${server.port}`;
  const procs = await Promise.all(Array.from({ length: STORM_PROCS }, () => forkReady(join(here, 'clients', 'inbox-devices.ts'))));
  const share = (p: number): number => Math.floor(STORM_UIDS / STORM_PROCS) + (p < STORM_UIDS % STORM_PROCS ? 1 : 0);
  const run = Math.random().toString(36).slice(2, 6);
  const prefix = (p: number): string => `s${run}${p}_`;
  const connectAll = (resume: boolean, concurrency: number) =>
    Promise.all(
      procs.map((c, p) =>
        ask<ConnectResult>(c.child, 'connect', {
          url,
          prefix: prefix(p),
          count: share(p),
          localAddresses: [1, 2, 3, 4].map((a) => `127.2.${p + 1}.${a}`),
          concurrency,
          resume,
          expect: PER_UID,
          timeoutMs: 120_000,
        }),
      ),
    );
  const first = await connectAll(false, 128);
  log(
    `storm ${engine}: ${first.reduce((a, r) => a + r.opened, 0)} devices connected once, ${first.reduce((a, r) => a + r.errors, 0)} errors`,
  );
  for (const c of procs) await ask(c.child, 'close');
  for (let i = 0; i < 300; i++) {
    const counts = await ask<{ connections: number }>(server.child, 'counts');
    if (counts.connections === 0) break;
    await sleep(100);
  }
  const before = engine === 'memory' ? await ask<NodeJS.MemoryUsage>(server.child, 'memory') : undefined;
  const rf0 = REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN;
  const sf0 = processCpuSeconds(server.child.pid ?? 0);
  const fills = await Promise.all(
    procs.map((_, p) =>
      ask<{ ms: number; calls: number; failed: number; failures: string[] }>(server.child, 'fill', {
        prefix: prefix(p),
        uids: share(p),
        perUid: PER_UID,
        bytes: BYTES,
        batch: fillBatch(engine),
        concurrency: FILL_CONCURRENCY,
      }),
    ),
  );
  const fillMs = Math.max(...fills.map((f) => f.ms));
  const fillCpu = `server ${(((processCpuSeconds(server.child.pid ?? 0) - sf0) / fillMs) * 1e5).toFixed(0)}%, redis ${((((REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN) - rf0) / fillMs) * 1e5).toFixed(0)}% of a core`;
  const retained = STORM_UIDS * PER_UID;
  log(
    `storm ${engine}: ${fmt(retained)} pushes retained in ${fmt(fillMs)} ms (${fmt((retained / fillMs) * 1000)}/s, ${fillCpu}), failed calls ${fills.reduce((a, f) => a + f.failed, 0)} ${fills
      .flatMap((f) => f.failures)
      .slice(0, 2)
      .join(' ; ')}`,
  );
  const after = engine === 'memory' ? await ask<NodeJS.MemoryUsage>(server.child, 'memory') : undefined;
  await sleep(500);
  const cpu0 = processCpuSeconds(server.child.pid ?? 0);
  const clients0 = procs.reduce((a, c) => a + processCpuSeconds(c.child.pid ?? 0), 0);
  const m0 = machineCpu();
  const rs0 = REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN;
  const lo0 = listenOverflows();
  const res = await connectAll(true, RECONNECT_CONCURRENCY);
  const overflows = listenOverflows() - lo0;
  const redisCpuS = (REDIS_PID > 0 ? processCpuSeconds(REDIS_PID) : NaN) - rs0;
  const m1 = machineCpu();
  const cpu1 = processCpuSeconds(server.child.pid ?? 0);
  const clientsCpuS = procs.reduce((a, c) => a + processCpuSeconds(c.child.pid ?? 0), 0) - clients0;
  const machine = machinePct(m0, m1);
  const start = Math.min(...res.map((r) => r.startedAt));
  const last = Math.max(...res.map((r) => r.lastCompleteAt));
  const sum = (k: keyof ConnectResult): number => res.reduce((a, r) => a + (r[k] as number), 0);
  const f: StormFigure = {
    engine,
    devices: STORM_UIDS,
    fillMs,
    fillPerSec: (retained / fillMs) * 1000,
    fillFailed: fills.reduce((a, x) => a + x.failed, 0),
    reconnectToLastMs: last - start,
    reconnectToLastWelcomeMs: Math.max(...res.map((r) => r.lastWelcomeAt)) - start,
    complete: sum('complete'),
    messages: sum('messages'),
    violations: sum('violations'),
    wrongMissed: sum('wrongMissed'),
    wrongEpoch: sum('wrongEpoch'),
    errors: sum('errors'),
    serverCpuS: cpu1 - cpu0,
    clientsCpuS,
    redisCpuS,
    overflows,
    machineBusyPct: machine.busy,
    machineSystemPct: machine.system + machine.irq,
    othersPct:
      machine.busy -
      ((cpu1 - cpu0 + clientsCpuS) / ((m1 !== undefined && m0 !== undefined ? m1.total - m0.total : NaN) / CLK_TCK / cpus().length)) * 100,
  };
  if (before !== undefined && after !== undefined) {
    f.heapPerMsgB = (after.heapUsed - before.heapUsed) / retained;
    f.rssPerMsgB = (after.rss - before.rss) / retained;
    f.heapBeforeMiB = before.heapUsed / 2 ** 20;
    f.heapAfterMiB = after.heapUsed / 2 ** 20;
    f.rssBeforeMiB = before.rss / 2 ** 20;
    f.rssAfterMiB = after.rss / 2 ** 20;
    log(
      `storm ${engine}: heap ${f.heapBeforeMiB.toFixed(1)} -> ${f.heapAfterMiB.toFixed(1)} MiB, rss ${f.rssBeforeMiB.toFixed(1)} -> ${f.rssAfterMiB.toFixed(1)} MiB, external ${(before.external / 2 ** 20).toFixed(1)} -> ${(after.external / 2 ** 20).toFixed(1)} MiB: ` +
        `${f.heapPerMsgB.toFixed(1)} B heap, ${f.rssPerMsgB.toFixed(1)} B rss per message`,
    );
  }
  log(
    `storm ${engine}: ${f.complete}/${STORM_UIDS} complete, first reconnect to last complete ${fmt(f.reconnectToLastMs)} ms (last welcome at ${fmt(f.reconnectToLastWelcomeMs)} ms), ` +
      `${fmt(f.messages)} messages, ${f.violations} order violations, ${f.wrongMissed} wrong missed, ${f.wrongEpoch} wrong epoch, ${f.errors} errors, server cpu ${f.serverCpuS.toFixed(2)} s, clients ${f.clientsCpuS.toFixed(2)} s, redis ${f.redisCpuS.toFixed(2)} s, listen overflows ${f.overflows}, machine busy ${f.machineBusyPct.toFixed(0)}% (kernel ${f.machineSystemPct.toFixed(0)}%, not the bench's ${f.othersPct.toFixed(0)}%) ` +
      res
        .flatMap((r) => [...r.errorSamples, ...r.violationSamples])
        .slice(0, 3)
        .join(' ; '),
  );
  for (const c of procs) {
    await ask(c.child, 'close');
    await stopChild(c.child);
  }
  await stopServer(server);
  return f;
}

// ---------------------------------------------------------------------------------------

const pushFigures: PushFigure[] = [];
const storms: StormFigure[] = [];
const workerFigures: PushFigure[] = [];
try {
  log(`machine: ${describeMachine()}`);
  if (ENGINES.includes('redis')) REDIS_PID = await redisPid();
  for (const engine of ENGINES) {
    if (PARTS.has('push')) pushFigures.push(...(await pushPart(engine)));
    if (PARTS.has('storm')) storms.push(await stormPart(engine));
  }
  if (PARTS.has('workers')) workerFigures.push(...(await workersPart()));
} finally {
  killStarted();
}

const lines: string[] = [
  `machine: ${describeMachine()}`,
  `push: ${SENDERS} senders x ${TARGETS} targets, ${INFLIGHT} in flight each, ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s per mode`,
  '',
];
const pushTable = (figs: PushFigure[]): void => {
  lines.push(
    '| run | delivered pushes/s | p50 / p99 (ms) | server CPU (% of a core) | server CPU per push (µs) | senders CPU | Redis CPU | machine busy (of 200%) | not the bench | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const f of figs)
    lines.push(
      `| ${f.label} | ${fmt(f.pushesPerSec)} | ${f.p50Ms.toFixed(2)} / ${f.p99Ms.toFixed(2)} | ${f.serverCpuPct.toFixed(0)}% | ${f.serverCpuUsPerPush.toFixed(1)} | ${f.clientsCpuPct.toFixed(0)}% | ${f.label.startsWith('redis') ? `${f.redisCpuPct.toFixed(0)}%` : '-'} | ${f.machineBusyPct.toFixed(0)}% | ${f.othersPct.toFixed(0)}% | ${f.errors} |`,
    );
  const find = (s: string) => figs.filter((f) => f.label.includes(s));
  for (const prefix of ['memory', 'redis', '--workers']) {
    const e = find(prefix).find((f) => f.label.includes('ephemeral'));
    const d = find(prefix).find((f) => f.label.includes(', durable'));
    if (e && d)
      lines.push(
        '',
        `${prefix}: retained / ephemeral = ${(d.pushesPerSec / e.pushesPerSec).toFixed(2)}x pushes/s, ${(e.serverCpuUsPerPush / d.serverCpuUsPerPush).toFixed(2)}x by server CPU per push`,
      );
  }
  lines.push('');
};
if (pushFigures.length) pushTable(pushFigures);
if (workerFigures.length) pushTable(workerFigures);
if (storms.length) {
  lines.push(
    `storm: ${STORM_UIDS} devices in ${STORM_PROCS} processes, ${PER_UID} pushes of ${BYTES} B per uid (fill: server.push, ${values['fill-batch']} uids per call, ${FILL_CONCURRENCY} calls outstanding); reconnect concurrency ${RECONNECT_CONCURRENCY || 'all'}`,
    '',
    '| engine | fill (ms) | fill pushes/s | first reconnect to last device complete (ms) | to last welcome (ms) | complete | messages | order violations | wrong missed | errors | listen overflows | server / devices / Redis CPU in storm (s) | machine busy (not the bench) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const s of storms)
    lines.push(
      `| ${s.engine} | ${fmt(s.fillMs)} | ${fmt(s.fillPerSec)} | ${fmt(s.reconnectToLastMs)} | ${fmt(s.reconnectToLastWelcomeMs)} | ${fmt(s.complete)} | ${fmt(s.messages)} | ${s.violations} | ${s.wrongMissed} | ${s.errors} | ${fmt(s.overflows)} | ${s.serverCpuS.toFixed(2)} / ${s.clientsCpuS.toFixed(2)} / ${s.engine === 'redis' ? s.redisCpuS.toFixed(2) : '-'} | ${s.machineBusyPct.toFixed(0)}% (${s.othersPct.toFixed(0)}%) |`,
    );
  for (const s of storms)
    if (s.heapPerMsgB !== undefined)
      lines.push(
        '',
        `memory engine, ${fmt(STORM_UIDS * PER_UID)} retained messages of ${BYTES} B: heap ${s.heapBeforeMiB?.toFixed(1)} -> ${s.heapAfterMiB?.toFixed(1)} MiB, RSS ${s.rssBeforeMiB?.toFixed(1)} -> ${s.rssAfterMiB?.toFixed(1)} MiB: ${s.heapPerMsgB.toFixed(1)} B heap, ${s.rssPerMsgB?.toFixed(1)} B RSS per message`,
      );
}
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json !== undefined) await writeFile(values.json, JSON.stringify({ pushFigures, storms, workerFigures }, null, 2));
process.exit(0);

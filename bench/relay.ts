/**
 * The relay of `uidpush serve --workers N` on its own: how many cross-worker messages per
 * second the primary carries, and at what CPU. This process is the primary, with the same
 * code as the CLI's (`servePrimary` over one `MemoryCluster`); it forks two node:cluster
 * workers running this file, each with the IPC broker of a real worker. One publishes
 * `--n` push envelopes round-robin to `--channels` uid channels, `--per-turn` per
 * event-loop turn; the other subscribes to all of them and counts. No sockets to clients:
 * this measures the hop between workers, not delivery.
 *
 * With `--rate R`, the publisher instead sends R pushes/s from a 1 ms timer, each stamped
 * with its send time, and the subscriber reports the hop's latency (one clock: both
 * workers read performance.timeOrigin + performance.now()).
 *
 * Usage: npx tsx bench/relay.ts [--n 200000] [--channels 1000] [--per-turn 100] [--runs 3]
 *          [--rate 10000]
 */
import cluster from 'node:cluster';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createIpcBroker, MemoryCluster, servePrimary } from '../src/broker/ipc.js';
import { silentLogger } from '../src/core/types.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '200000' },
    channels: { type: 'string', default: '1000' },
    'per-turn': { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '0' },
  },
});
const int = (name: string, text: string, max: number): number => {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--${name}: an integer 1..${String(max)}, not ${text}`);
  return v;
};
const N = int('n', process.env.RELAY_N ?? values.n, 10_000_000);
const CHANNELS = int('channels', process.env.RELAY_CHANNELS ?? values.channels, 100_000);
const PER_TURN = int('per-turn', process.env.RELAY_PER_TURN ?? values['per-turn'], 100_000);
const RUNS = int('runs', values.runs, 20);
const RATE = Number(process.env.RELAY_RATE ?? values.rate);
if (!Number.isInteger(RATE) || RATE < 0 || RATE > 1_000_000) throw new Error(`--rate: an integer 0..1000000, not ${String(RATE)}`);
const clock = (): number => performance.timeOrigin + performance.now();

interface Note {
  relay?: 'ready' | 'go' | 'done';
  /** Latencies in ms (paced runs), sorted. */
  latencies?: number[];
}

async function worker(): Promise<void> {
  const broker = createIpcBroker();
  let got = 0;
  const latencies: number[] = [];
  await broker.start((_channel, message) => {
    if (RATE > 0) latencies.push(clock() - Number(/"data":"p\|([\d.]+)"/.exec(message)?.[1]));
    if (++got === N) {
      latencies.sort((a, b) => a - b);
      process.send?.({ relay: 'done', latencies });
    }
  });
  if (process.env.RELAY_ROLE === 'sub') {
    const subscribed: Promise<void>[] = [];
    for (let i = 0; i < CHANNELS; i++) subscribed.push(broker.subscribe(`u:${String(i)}`));
    // Ready once the primary has every subscription in effect.
    await Promise.all(subscribed);
    process.send?.({ relay: 'ready' });
    return;
  }
  process.on('message', (msg: Note) => {
    if (msg.relay !== 'go') return;
    let i = 0;
    const send = (): void => {
      const uid = `u${String(i % CHANNELS)}`;
      const data = RATE > 0 ? `p|${String(clock())}` : `p|${String(i)}`;
      void broker.publish(`u:${String(i % CHANNELS)}`, `{"v":1,"n":"w1","t":"push","uid":"${uid}","data":"${data}","from":null}`);
      i++;
    };
    if (RATE > 0) {
      // What the rate makes due by now, every millisecond.
      const start = performance.now();
      const timer = setInterval(() => {
        const due = Math.min(N, Math.floor(((performance.now() - start) * RATE) / 1000));
        while (i < due) send();
        if (i >= N) clearInterval(timer);
      }, 1);
      return;
    }
    const turn = (): void => {
      for (let k = 0; k < PER_TURN && i < N; k++) send();
      if (i < N) setImmediate(turn);
    };
    turn();
  });
  process.send?.({ relay: 'ready' });
}

interface RunResult {
  perSecond: number;
  primaryCpu: number;
  p50: number;
  p99: number;
  max: number;
}

async function run(): Promise<RunResult> {
  const shared = new MemoryCluster();
  const env = { RELAY_N: String(N), RELAY_CHANNELS: String(CHANNELS), RELAY_PER_TURN: String(PER_TURN), RELAY_RATE: String(RATE) };
  const pub = cluster.fork({ ...env, RELAY_ROLE: 'pub' });
  const sub = cluster.fork({ ...env, RELAY_ROLE: 'sub' });
  const stops = [servePrimary(shared, pub, silentLogger), servePrimary(shared, sub, silentLogger)];
  const timer = setTimeout(() => {
    pub.kill('SIGKILL');
    sub.kill('SIGKILL');
  }, 120_000);
  try {
    return await new Promise((resolve, reject) => {
      let ready = 0;
      let t0 = 0;
      let cpu0 = process.cpuUsage();
      const onMessage = (msg: Note): void => {
        if (msg.relay === 'ready' && ++ready === 2) {
          t0 = performance.now();
          cpu0 = process.cpuUsage();
          pub.send({ relay: 'go' });
        } else if (msg.relay === 'done') {
          const ms = performance.now() - t0;
          const cpu = process.cpuUsage(cpu0);
          const l = msg.latencies ?? [];
          const q = (p: number): number => l[Math.min(l.length - 1, Math.floor(p * l.length))] ?? NaN;
          resolve({
            perSecond: (N / ms) * 1000,
            primaryCpu: ((cpu.user + cpu.system) / 1000 / ms) * 100,
            p50: q(0.5),
            p99: q(0.99),
            max: l.at(-1) ?? NaN,
          });
        }
      };
      pub.on('message', onMessage);
      sub.on('message', onMessage);
      for (const w of [pub, sub]) {
        w.once('exit', () => {
          reject(new Error('a worker exited before the run ended'));
        });
      }
    });
  } finally {
    clearTimeout(timer);
    for (const w of [pub, sub]) {
      w.removeAllListeners('exit');
      w.kill('SIGKILL');
    }
    await Promise.all(stops.map((stop) => stop()));
  }
}

if (cluster.isWorker) {
  await worker();
} else {
  cluster.setupPrimary({ execArgv: ['--import', 'tsx'] });
  console.log(`machine: ${String(cpus().length)} x ${cpus()[0]?.model ?? 'unknown'}, Node ${process.version}`);
  const pace = RATE > 0 ? `paced at ${String(RATE)}/s` : `${String(PER_TURN)} per turn`;
  console.log(`${String(N)} pushes over ${String(CHANNELS)} uid channels, ${pace}, ${String(RUNS)} runs`);
  const results: RunResult[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run();
    results.push(r);
    const latency = RATE > 0 ? `; hop latency p50 ${r.p50.toFixed(2)} p99 ${r.p99.toFixed(2)} max ${r.max.toFixed(1)} ms` : '';
    console.log(
      `run ${String(i + 1)}: ${Math.round(r.perSecond).toLocaleString('en-US')} pushes/s relayed, primary ${r.primaryCpu.toFixed(0)}% of a core${latency}`,
    );
  }
  results.sort((a, b) => a.perSecond - b.perSecond);
  const median = results[Math.floor(results.length / 2)];
  if (median !== undefined) {
    console.log(
      `median: ${Math.round(median.perSecond).toLocaleString('en-US')} pushes/s, primary ${median.primaryCpu.toFixed(0)}% of a core`,
    );
  }
}

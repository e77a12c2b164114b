/**
 * The relay of `uidpush serve --workers N` on its own: how many cross-worker messages per
 * second the primary carries, and at what CPU. This process is the primary, with the same
 * code as the CLI's (`servePrimary` over one `MemoryCluster`); it forks two node:cluster
 * workers running this file, each with the IPC broker of a real worker. One publishes
 * `--n` push envelopes round-robin to `--channels` uid channels, `--per-turn` per
 * event-loop turn; the other subscribes to all of them and counts. No sockets to clients:
 * this measures the hop between workers, not delivery.
 *
 * Usage: npx tsx bench/relay.ts [--n 200000] [--channels 1000] [--per-turn 100] [--runs 3]
 */
import cluster from 'node:cluster';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createIpcBroker, MemoryCluster, servePrimary } from '../src/broker/ipc.js';

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '200000' },
    channels: { type: 'string', default: '1000' },
    'per-turn': { type: 'string', default: '100' },
    runs: { type: 'string', default: '3' },
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
const silent = { debug() {}, info() {}, warn() {}, error() {} };

interface Note {
  relay?: 'ready' | 'go' | 'done';
}

async function worker(): Promise<void> {
  const broker = createIpcBroker();
  let got = 0;
  await broker.start(() => {
    if (++got === N) process.send?.({ relay: 'done' });
  });
  if (process.env.RELAY_ROLE === 'sub') {
    for (let i = 0; i < CHANNELS; i++) broker.subscribe(`u:${String(i)}`);
    // The subscriptions go out on the next turn; let the primary take them in.
    setTimeout(() => process.send?.({ relay: 'ready' }), 500);
    return;
  }
  process.on('message', (msg: Note) => {
    if (msg.relay !== 'go') return;
    let i = 0;
    const turn = (): void => {
      for (let k = 0; k < PER_TURN && i < N; k++, i++) {
        const uid = `u${String(i % CHANNELS)}`;
        void broker.publish(`u:${String(i % CHANNELS)}`, `{"v":1,"n":"w1","t":"push","uid":"${uid}","data":"p|${String(i)}","from":null}`);
      }
      if (i < N) setImmediate(turn);
    };
    turn();
  });
  process.send?.({ relay: 'ready' });
}

async function run(): Promise<{ perSecond: number; primaryCpu: number }> {
  const shared = new MemoryCluster();
  const env = { RELAY_N: String(N), RELAY_CHANNELS: String(CHANNELS), RELAY_PER_TURN: String(PER_TURN) };
  const pub = cluster.fork({ ...env, RELAY_ROLE: 'pub' });
  const sub = cluster.fork({ ...env, RELAY_ROLE: 'sub' });
  const stops = [servePrimary(shared, pub, silent), servePrimary(shared, sub, silent)];
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
          resolve({ perSecond: (N / ms) * 1000, primaryCpu: ((cpu.user + cpu.system) / 1000 / ms) * 100 });
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
  console.log(`${String(N)} pushes over ${String(CHANNELS)} uid channels, ${String(PER_TURN)} per turn, ${String(RUNS)} runs`);
  const results: { perSecond: number; primaryCpu: number }[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run();
    results.push(r);
    console.log(`run ${String(i + 1)}: ${Math.round(r.perSecond).toLocaleString('en-US')} pushes/s relayed, primary ${r.primaryCpu.toFixed(0)}% of a core`);
  }
  results.sort((a, b) => a.perSecond - b.perSecond);
  const median = results[Math.floor(results.length / 2)];
  if (median !== undefined) {
    console.log(`median: ${Math.round(median.perSecond).toLocaleString('en-US')} pushes/s, primary ${median.primaryCpu.toFixed(0)}% of a core`);
  }
}

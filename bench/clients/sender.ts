/**
 * Targeted push load: one sender connection pushes `<target>:p|<sent-at>` to targets held
 * by this same process, keeping `inflight` pushes outstanding, so it sees each delivery and
 * its latency without cross-process clocks or feedback. Refills are batched into one
 * write, and the connections are raw (bench/lib/raw-ws.ts), so the client spends little
 * per push.
 */
import { now, serve } from '../lib/ipc.js';
import { RawClient } from '../lib/raw-ws.js';

interface OpenArgs {
  url: string;
  sender: string;
  targetPrefix: string;
  targets: number;
  localAddress: string;
}
interface RunArgs {
  durationMs: number;
  inflight: number;
  maxPushes: number;
}

let sender: RawClient | undefined;
const targets: string[] = [];
const sockets: RawClient[] = [];
let delivered = 0;
let inflight = 0;
let latencies = new Float64Array(0);
let onDelivery: (() => void) | undefined;

function onPush(data: Buffer): void {
  const at = now();
  // p|<sent-at>
  if (delivered < latencies.length) latencies[delivered] = at - Number(data.toString('latin1', 2));
  delivered++;
  inflight--;
  onDelivery?.();
}

function connect(url: string, uid: string, localAddress: string, onMessage?: (data: Buffer) => void): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    let loggedIn = false;
    new RawClient(new URL(url), localAddress, {
      open: (client) => {
        client.send(uid);
      },
      message: (client, data) => {
        if (loggedIn) {
          onMessage?.(data);
          return;
        }
        loggedIn = true;
        sockets.push(client);
        resolve(client);
      },
      close: (_client, error) => {
        if (!loggedIn) reject(new Error(`${uid}: ${error ?? 'closed before login'}`));
      },
    });
  });
}

async function open(args: OpenArgs): Promise<number> {
  sender = await connect(args.url, args.sender, args.localAddress);
  for (let i = 0; i < args.targets; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(args.targets, i + 50); j++) {
      const uid = `${args.targetPrefix}${j}`;
      targets.push(uid);
      batch.push(connect(args.url, uid, args.localAddress, onPush));
    }
    await Promise.all(batch);
  }
  return sockets.length;
}

function run(args: RunArgs): Promise<unknown> {
  const client = sender;
  if (client === undefined) throw new Error('not open');
  latencies = new Float64Array(args.maxPushes);
  delivered = 0;
  inflight = 0;
  let sent = 0;
  let t = 0;
  const started = now();
  const deadline = started + args.durationMs;
  return new Promise((resolve) => {
    const refill = (): void => {
      if (now() >= deadline || sent >= args.maxPushes) {
        if (inflight === 0) finish();
        return;
      }
      if (inflight > args.inflight / 2) return;
      const batch: string[] = [];
      while (inflight < args.inflight && sent < args.maxPushes) {
        batch.push(`${targets[t] ?? ''}:p|${now()}`);
        t = (t + 1) % targets.length;
        sent++;
        inflight++;
      }
      client.sendMany(batch);
    };
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      onDelivery = undefined;
      const elapsed = now() - started;
      const n = Math.min(delivered, latencies.length);
      // A stride sample keeps the IPC message small and the distribution intact.
      const stride = Math.max(1, Math.ceil(n / 50_000));
      const sample: number[] = [];
      for (let i = 0; i < n; i += stride) sample.push(latencies[i] as number);
      resolve({ sent, delivered, elapsedMs: elapsed, latencies: sample });
    };
    onDelivery = refill;
    // A lost push would stall the window; the bound makes the run end regardless.
    setTimeout(finish, args.durationMs + 5000).unref();
    refill();
  });
}

serve({
  open: (args) => open(args as OpenArgs),
  run: (args) => run(args as RunArgs),
  close: () => {
    for (const s of sockets) s.destroy();
    return sockets.length;
  },
});
process.send?.({ ready: true });

/**
 * Targeted push load for bench/inbox.ts: like clients/sender.ts (one sender connection,
 * `targets` target connections in this same process, `inflight` pushes outstanding,
 * refills under one cork), in either protocol:
 * - `v1`: every connection speaks uidpush.v1 (`auth` with a uid and a device); the sender
 *   writes `{"type":"send","to":<target>,"data":"p|<sent-at>"[,"delivery":<class>]}` with no
 *   id, so nothing answers it; a target reads `"data":"p|<sent-at>"` off its message frame;
 * - `seed`: `<target>:p|<sent-at>` as in clients/sender.ts (retained by default with the inbox).
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { now, serve } from '../lib/ipc.js';

interface OpenArgs {
  url: string;
  protocol: 'v1' | 'seed';
  sender: string;
  targetPrefix: string;
  targets: number;
  localAddress: string;
}
interface RunArgs {
  durationMs: number;
  inflight: number;
  maxPushes: number;
  /** v1 only: the send frame's `delivery`, or none. */
  delivery?: string;
}

let protocol: 'v1' | 'seed' = 'v1';
let sender: WebSocket | undefined;
const targets: string[] = [];
const sockets: WebSocket[] = [];
let delivered = 0;
let inflight = 0;
let errors = 0;
const errorSamples: string[] = [];
let latencies = new Float64Array(0);
let onDelivery: (() => void) | undefined;

function connect(url: string, uid: string, localAddress: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws =
      protocol === 'v1'
        ? new WebSocket(url, 'uidpush.v1', { localAddress, perMessageDeflate: false })
        : new WebSocket(url, { localAddress, perMessageDeflate: false });
    ws.once('open', () => {
      ws.send(protocol === 'v1' ? JSON.stringify({ type: 'auth', uid, device: 'd1' }) : uid);
    });
    ws.once('message', () => {
      sockets.push(ws);
      resolve(ws);
    });
    ws.once('error', reject);
  });
}

/** The `<sent-at>` of a delivery: the seed's `p|<t>`, or v1's `..."data":"p|<t>"}`. */
function sentAt(data: Buffer): number {
  if (data[0] !== 0x7b) return Number(data.toString('latin1', 2));
  const text = data.toString('latin1');
  const at = text.lastIndexOf('"data":"p|');
  return at < 0 ? NaN : Number(text.slice(at + 10, text.length - 2));
}

async function open(args: OpenArgs): Promise<number> {
  protocol = args.protocol;
  sender = await connect(args.url, args.sender, args.localAddress);
  sender.on('message', (data: Buffer) => {
    // No send carries an id: anything the sender gets is an error frame.
    errors++;
    if (errorSamples.length < 5) errorSamples.push(data.toString('utf8', 0, 300));
  });
  for (let i = 0; i < args.targets; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(args.targets, i + 50); j++) {
      const uid = `${args.targetPrefix}${j}`;
      targets.push(uid);
      batch.push(
        connect(args.url, uid, args.localAddress).then((ws) => {
          ws.on('message', (data: Buffer) => {
            const at = now();
            if (delivered < latencies.length) latencies[delivered] = at - sentAt(data);
            delivered++;
            inflight--;
            onDelivery?.();
          });
        }),
      );
    }
    await Promise.all(batch);
  }
  return sockets.length;
}

function run(args: RunArgs): Promise<unknown> {
  const ws = sender;
  if (ws === undefined) throw new Error('not open');
  const tcp = (ws as unknown as { _socket: Socket })._socket;
  latencies = new Float64Array(args.maxPushes);
  delivered = 0;
  inflight = 0;
  errors = 0;
  let sent = 0;
  let t = 0;
  const deliveryPart = args.delivery === undefined ? '' : `,"delivery":${JSON.stringify(args.delivery)}`;
  const frame =
    protocol === 'v1'
      ? (to: string): string => `{"type":"send","to":"${to}"${deliveryPart},"data":"p|${now()}"}`
      : (to: string): string => `${to}:p|${now()}`;
  const started = now();
  const deadline = started + args.durationMs;
  return new Promise((resolve) => {
    const refill = (): void => {
      if (now() >= deadline || sent >= args.maxPushes) {
        if (inflight === 0) finish();
        return;
      }
      if (inflight > args.inflight / 2) return;
      tcp.cork();
      while (inflight < args.inflight && sent < args.maxPushes) {
        ws.send(frame(targets[t] ?? ''));
        t = (t + 1) % targets.length;
        sent++;
        inflight++;
      }
      tcp.uncork();
    };
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      onDelivery = undefined;
      const elapsed = now() - started;
      const n = Math.min(delivered, latencies.length);
      const stride = Math.max(1, Math.ceil(n / 20_000));
      const sample: number[] = [];
      for (let i = 0; i < n; i += stride) sample.push(latencies[i] as number);
      resolve({ sent, delivered, elapsedMs: elapsed, latencies: sample, errors, errorSamples });
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
  cpu: () => process.cpuUsage(),
  close: () => {
    for (const s of sockets) s.terminate();
    return sockets.length;
  },
});
process.send?.({ ready: true });

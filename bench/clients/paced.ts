/**
 * Paced targeted pushes, for pushes that cross nodes. One process may hold targets, a
 * sender, or both:
 *
 *  - `targets`: opens `count` logged-in connections `<prefix><i>` to `url` and, for every
 *    push `p|<sent-at>` that arrives, records latency = arrival - sent-at (one clock for
 *    all processes of the box: performance.timeOrigin + performance.now());
 *  - `sender`: opens one logged-in sender connection;
 *  - `run`: sends `<uid>:p|<now>` round-robin over the given target uids at a fixed rate:
 *    a 1 ms timer sends what is due by now (rate x elapsed - sent), under one cork, so the
 *    rate holds even when the timer fires late; a tick never sends more than 20 ms worth,
 *    so a sender that falls behind shows up as a lower achieved rate, not as a burst;
 *  - `collect`: deliveries and latencies since the last `collect` (and resets them).
 *
 * Fork with `serialization: 'advanced'`: latencies go back as a Float64Array.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { now, serve } from '../lib/ipc.js';

interface TargetsArgs {
  url: string;
  prefix: string;
  count: number;
  localAddress: string;
  concurrency: number;
}
interface SenderArgs {
  url: string;
  uid: string;
  localAddress: string;
}
interface RunArgs {
  /** Target uids, as prefix + index ranges, interleaved round-robin. */
  targets: { prefix: string; count: number }[];
  rate: number;
  durationMs: number;
}
export interface RunResult {
  sent: number;
  elapsedMs: number;
  /** Largest backlog seen at a tick: pushes due but not yet sent, in ms of the rate. */
  maxBehindMs: number;
  /** Largest ws bufferedAmount on the sender seen at a tick (bytes not yet on the wire). */
  maxBuffered: number;
}
export interface Collected {
  delivered: number;
  latencies: Float64Array;
  /** When each push was sent (the same index as `latencies`). */
  sentAt: Float64Array;
  /** Target connections closed since they logged in. */
  closed: number;
  /** Errors on target connections since they were opened. */
  errors: string[];
}

const sockets: WebSocket[] = [];
let sender: WebSocket | undefined;
let latencies = new Float64Array(1 << 20);
let sentAt = new Float64Array(1 << 20);
let delivered = 0;
let closed = 0;
const errors: string[] = [];
/** Most latencies one process keeps between two `collect`s (2 x 128 MiB). */
const MAX_SAMPLES = 1 << 24;

function record(data: Buffer): void {
  const at = now();
  // p|<sent-at>
  if (data[0] !== 0x70 || data[1] !== 0x7c) return;
  if (delivered === latencies.length && latencies.length < MAX_SAMPLES) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
    const biggerSent = new Float64Array(sentAt.length * 2);
    biggerSent.set(sentAt);
    sentAt = biggerSent;
  }
  if (delivered < latencies.length) {
    const sent = Number(data.toString('latin1', 2));
    latencies[delivered] = at - sent;
    sentAt[delivered] = sent;
  }
  delivered++;
}

function noteError(err: Error): void {
  if (errors.length < 20) errors.push(err.message);
}

function connect(url: string, uid: string, localAddress: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${uid}: no login reply in 30 s`));
    }, 30_000);
    ws.once('open', () => {
      ws.send(uid);
    });
    ws.once('message', () => {
      clearTimeout(timer);
      sockets.push(ws);
      resolve(ws);
    });
    ws.once('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`${uid}: closed with ${code} before login`));
    });
    ws.on('error', (err) => {
      noteError(err);
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function openTargets(args: TargetsArgs): Promise<number> {
  const step = Math.max(1, args.concurrency);
  for (let i = 0; i < args.count; i += step) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(args.count, i + step); j++) {
      batch.push(
        connect(args.url, `${args.prefix}${j}`, args.localAddress).then((ws) => {
          ws.on('message', record);
          ws.once('close', () => {
            closed++;
          });
        }),
      );
    }
    await Promise.all(batch);
  }
  return sockets.length;
}

async function openSender(args: SenderArgs): Promise<void> {
  sender = await connect(args.url, args.uid, args.localAddress);
}

function run(args: RunArgs): Promise<RunResult> {
  const ws = sender;
  if (ws === undefined) throw new Error('no sender: call `sender` first');
  const tcp = (ws as unknown as { _socket: Socket })._socket;
  const uids: string[] = [];
  const longest = Math.max(0, ...args.targets.map((t) => t.count));
  for (let i = 0; i < longest; i++) {
    for (const t of args.targets) if (i < t.count) uids.push(`${t.prefix}${i}`);
  }
  if (uids.length === 0) throw new Error('no targets');
  const prefixes = uids.map((u) => `${u}:p|`);
  const maxPerTick = Math.max(1, Math.ceil(args.rate / 50));
  let sent = 0;
  let next = 0;
  let maxBehind = 0;
  let maxBuffered = 0;
  const started = now();
  const total = Math.round((args.rate * args.durationMs) / 1000);
  return new Promise((resolve) => {
    const tick = (): void => {
      const at = now();
      const elapsed = at - started;
      const due = Math.min(total, Math.floor((args.rate * elapsed) / 1000)) - sent;
      if (due > 0) {
        const n = Math.min(due, maxPerTick);
        maxBehind = Math.max(maxBehind, ((due - n) / args.rate) * 1000);
        maxBuffered = Math.max(maxBuffered, ws.bufferedAmount);
        tcp.cork();
        for (let i = 0; i < n; i++) {
          ws.send(`${prefixes[next] ?? ''}${now()}`);
          next = (next + 1) % prefixes.length;
        }
        tcp.uncork();
        sent += n;
      }
      if (sent >= total || elapsed >= args.durationMs + 2000) {
        clearInterval(timer);
        resolve({ sent, elapsedMs: now() - started, maxBehindMs: maxBehind, maxBuffered });
      }
    };
    const timer = setInterval(tick, 1);
  });
}

function collect(): Collected {
  const n = Math.min(delivered, latencies.length);
  const out: Collected = {
    delivered,
    latencies: latencies.slice(0, n),
    sentAt: sentAt.slice(0, n),
    closed,
    errors: [...errors],
  };
  delivered = 0;
  return out;
}

serve({
  targets: (args) => openTargets(args as TargetsArgs),
  sender: (args) => openSender(args as SenderArgs),
  run: (args) => run(args as RunArgs),
  /** Deliveries so far, without resetting them. */
  count: () => delivered,
  collect: () => collect(),
  cpu: () => process.cpuUsage(),
  close: () => {
    for (const ws of sockets) ws.terminate();
    return sockets.length;
  },
});
process.send?.({ ready: true });

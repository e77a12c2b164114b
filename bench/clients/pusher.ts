/**
 * Load generator for bench/http.ts, in its own process (never the server's):
 *
 *  - `http`: autocannon against `POST /v1/push` with keep-alive, `batch` uids per request
 *    (`{"uid": ...}` when batch is 1, `{"uids": [...]}` otherwise), the uids taken
 *    round-robin over the list it is given, one shared cursor for all connections;
 *  - `inner`: newline-delimited `{"uid":"...","data":"..."}` lines on the inner text port,
 *    keeping `inflight` lines unanswered per connection (refilled half a window at a time,
 *    one write per refill) and counting the `ok` / `fail` / `error ...` answer lines. Answers
 *    come in order, so each line's latency is its answer's time minus its write time.
 *
 * Every run is bounded by its duration, and what it waits for afterwards by a timeout.
 */
import autocannon from 'autocannon';
import { createConnection, type Socket } from 'node:net';
import { now, serve } from '../lib/ipc.js';

interface HttpArgs {
  url: string;
  apiKey: string;
  uids: string[];
  batch: number;
  data: string;
  connections: number;
  pipelining: number;
  durationSec: number;
}

export interface HttpResult {
  /** 2xx responses. */
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Requests written (answered or not). */
  sent: number;
  durationSec: number;
  latencyP50: number;
  latencyP99: number;
  latencyMean: number;
}

interface InnerArgs {
  host: string;
  port: number;
  uids: string[];
  data: string;
  connections: number;
  inflight: number;
  durationMs: number;
}

export interface InnerResult {
  sent: number;
  ok: number;
  fail: number;
  /** `error ...` answer lines plus socket errors. */
  errors: number;
  /** Lines written but not answered when the run ended. */
  unanswered: number;
  elapsedMs: number;
  latencyP50: number;
  latencyP99: number;
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/** The request bodies, in order: together they cover every uid equally often. */
function buildBodies(uids: string[], batch: number, data: string): Buffer[] {
  const n = uids.length;
  if (batch === 1) return uids.map((uid) => Buffer.from(JSON.stringify({ uid, data })));
  // n / gcd(n, batch) bodies take each uid exactly batch / gcd times; cap what that costs.
  let count = n / gcd(n, batch);
  if (count * batch > 2_000_000) count = Math.ceil(n / batch);
  const bodies: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const slice: string[] = [];
    for (let j = 0; j < batch; j++) slice.push(uids[(k * batch + j) % n] as string);
    bodies.push(Buffer.from(JSON.stringify({ uids: slice, data })));
  }
  return bodies;
}

async function runHttp(args: HttpArgs): Promise<HttpResult> {
  const bodies = buildBodies(args.uids, args.batch, args.data);
  let next = 0;
  const result = await autocannon({
    url: args.url,
    connections: args.connections,
    pipelining: args.pipelining,
    duration: args.durationSec,
    timeout: 30,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${args.apiKey}` },
    requests: [
      {
        method: 'POST',
        path: '/v1/push',
        setupRequest: (request) => {
          request.body = bodies[next];
          next = next + 1 === bodies.length ? 0 : next + 1;
          return request;
        },
      },
    ],
  });
  return {
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    sent: result.requests.sent,
    durationSec: result.duration,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMean: result.latency.mean,
  };
}

const NEWLINE = 0x0a;
const LATENCY_SAMPLES = 4_000_000;

async function runInner(args: InnerArgs): Promise<InnerResult> {
  const lines = args.uids.map((uid) => `${JSON.stringify({ uid, data: args.data })}\n`);
  let cursor = 0;
  const latencies = new Float32Array(LATENCY_SAMPLES);
  let recorded = 0;
  const totals = { sent: 0, ok: 0, fail: 0, errors: 0, unanswered: 0 };
  const started = now();
  const deadline = started + args.durationMs;
  let lastAnswer = started;

  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const socket: Socket = createConnection({ host: args.host, port: args.port });
      socket.setNoDelay(true);
      const window = args.inflight;
      const sentAt = new Float64Array(window); // by line number modulo window; answers come in order
      let sent = 0;
      let answered = 0;
      let atLineStart = true;
      let finished = false;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(guard);
        totals.sent += sent;
        totals.unanswered += sent - answered;
        socket.destroy();
        resolve();
      };
      // Bounded: the run's duration plus 15 s to collect the last answers.
      const guard = setTimeout(finish, args.durationMs + 15_000);
      const refill = (): void => {
        const t = now();
        if (t >= deadline) {
          if (answered === sent) finish();
          return;
        }
        const room = window - (sent - answered);
        if (room < window / 2 && sent > 0) return;
        let chunk = '';
        for (let i = 0; i < room; i++) {
          chunk += lines[cursor] as string;
          cursor = cursor + 1 === lines.length ? 0 : cursor + 1;
          sentAt[sent % window] = t;
          sent++;
        }
        socket.write(chunk);
      };
      socket.on('connect', refill);
      socket.on('data', (data: Buffer) => {
        const t = now();
        for (let i = 0; i < data.length; i++) {
          const byte = data[i] as number;
          if (atLineStart) {
            // 'o'k, 'f'ail, 'e'rror <code>
            if (byte === 0x6f) totals.ok++;
            else if (byte === 0x66) totals.fail++;
            else totals.errors++;
            if (recorded < LATENCY_SAMPLES) latencies[recorded++] = t - (sentAt[answered % window] as number);
            answered++;
            atLineStart = false;
          }
          if (byte === NEWLINE) atLineStart = true;
        }
        lastAnswer = t;
        refill();
      });
      socket.on('error', () => {
        totals.errors++;
        finish();
      });
      socket.on('close', finish);
    });

  await Promise.all(Array.from({ length: args.connections }, one));
  const sorted = latencies.subarray(0, recorded).sort();
  const at = (q: number): number =>
    recorded === 0 ? NaN : (sorted[Math.min(recorded - 1, Math.max(0, Math.ceil(q * recorded) - 1))] as number);
  return {
    ...totals,
    elapsedMs: lastAnswer - started,
    latencyP50: at(0.5),
    latencyP99: at(0.99),
  };
}

serve({
  http: (args) => runHttp(args as HttpArgs),
  inner: (args) => runInner(args as InnerArgs),
  cpu: () => process.cpuUsage(),
});
process.send?.({ ready: true });

/**
 * uidpush with the inbox for bench/inbox.ts: `createServer` with `rateLimit: 0`,
 * `maxBufferedBytes: 16 MiB` and the options in BENCH_OPTS (JSON: `inbox`, `redis`,
 * `redisNamespace`, `inboxSize`, ...). Answers over IPC: memory after GC, CPU, counts, and
 * `fill`, which retains `perUid` pushes to each of `uids` uids through `server.push` with
 * a bounded number of calls outstanding.
 */
import { createServer, type ServerOptions } from '../../src/index.js';
import { memoryAfterGc, now, serve } from '../lib/ipc.js';

const options = JSON.parse(process.env.BENCH_OPTS ?? '{}') as Partial<ServerOptions>;
const server = createServer({
  host: '127.0.0.1',
  port: 0,
  rateLimit: 0,
  maxBufferedBytes: 16 * 1024 * 1024,
  ...options,
});
const { port } = await server.listen();

interface FillArgs {
  prefix: string;
  uids: number;
  perUid: number;
  bytes: number;
  /** Uids per `server.push` call (1: one call per uid and message). */
  batch: number;
  /** Calls outstanding at most. */
  concurrency: number;
  delivery?: 'durable' | 'ephemeral';
}

/** Retains `perUid` messages for each uid, round k to every uid before round k + 1. */
async function fill(args: FillArgs): Promise<{ ms: number; calls: number; failed: number; failures: string[] }> {
  const uids = Array.from({ length: args.uids }, (_, i) => `${args.prefix}${i}`);
  const chunks: string[][] = [];
  for (let i = 0; i < uids.length; i += args.batch) chunks.push(uids.slice(i, i + args.batch));
  const started = now();
  let calls = 0;
  let failed = 0;
  const failures: string[] = [];
  let inflight = 0;
  let k = 1;
  let c = 0;
  const total = args.perUid * chunks.length;
  // Each message its own string (m<k>|<first uid of the call>|xxx...): one string per call,
  // shared by the uids of that call only, as a push to several uids is.
  const pad = (m: number, uid: string): string => {
    const head = `m${String(m)}|${uid}|`;
    return head + 'x'.repeat(Math.max(0, args.bytes - head.length));
  };
  const push = args.delivery === undefined ? undefined : { delivery: { kind: args.delivery } as const };
  await new Promise<void>((resolve) => {
    let done = 0;
    const next = (): void => {
      while (inflight < args.concurrency && k <= args.perUid) {
        const chunk = chunks[c] ?? [];
        const result = server.push(chunk, pad(k, chunk[0] ?? ''), push);
        calls++;
        c++;
        if (c === chunks.length) {
          c = 0;
          k++;
          // A synchronous engine yields once a round (loop() goes on).
          if (inflight === 0 && !(result instanceof Promise)) {
            if (++done === total) resolve();
            return;
          }
        }
        if (result instanceof Promise) {
          inflight++;
          result.then(
            () => {
              settle();
            },
            (err: unknown) => {
              failed++;
              if (failures.length < 3) failures.push(String(err));
              settle();
            },
          );
        } else if (++done === total) {
          resolve();
          return;
        }
      }
    };
    const settle = (): void => {
      inflight--;
      if (++done === total) resolve();
      else next();
    };
    // Synchronous engines would recurse without bound; yield every round instead.
    const loop = (): void => {
      next();
      if (k <= args.perUid && inflight === 0) setImmediate(loop);
    };
    loop();
  });
  return { ms: now() - started, calls, failed, failures };
}

serve({
  memory: () => memoryAfterGc(),
  cpu: () => process.cpuUsage(),
  counts: () => ({ connections: server.openConnections, online: server.local.onlineUids }),
  fill: (args) => fill(args as FillArgs),
  stats: () => server.stats(),
});
process.send?.({ ready: true, port });

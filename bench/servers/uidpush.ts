/**
 * uidpush under load: the library's createServer with the defaults, except the
 * per-connection rate limit, which is off so the senders are not throttled (the naive
 * baseline has none either).
 */
import type * as Uidpush from '../../src/index.js';
import { heapSnapshotAfterGc, memoryAfterGc, serve } from '../lib/ipc.js';

// The built package, as users run it (`npm run bench` builds first); BENCH_SRC=1 runs the
// sources through tsx instead, whose transform adds a call per closure made (esbuild's
// keepNames `__name`), which the compiled code does not have.
const entry = process.env.BENCH_SRC === '1' ? '../../src/index.js' : '../../dist/index.js';
const { createServer } = (await import(entry)) as typeof Uidpush;

const server = createServer({
  host: '127.0.0.1',
  port: Number(process.env.BENCH_PORT ?? 0),
  rateLimit: 0,
  maxBufferedBytes: 16 * 1024 * 1024,
});
const { port } = await server.listen();
serve({
  memory: () => memoryAfterGc(),
  heapSnapshot: (dir) => heapSnapshotAfterGc(dir as string),
  cpu: () => process.cpuUsage(),
  counts: () => ({ connections: server.openConnections, online: server.local.onlineUids }),
});
process.send?.({ ready: true, port });

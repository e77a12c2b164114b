/**
 * uidpush under load: the library's createServer with the defaults, except the
 * per-connection rate limit, which is off so the senders are not throttled (the naive
 * baseline has none either).
 */
import { createServer } from '../../src/index.js';
import { memoryAfterGc, serve } from '../lib/ipc.js';

const server = createServer({
  host: '127.0.0.1',
  port: Number(process.env.BENCH_PORT ?? 0),
  rateLimit: 0,
  maxBufferedBytes: 16 * 1024 * 1024,
});
const { port } = await server.listen();
serve({
  memory: () => memoryAfterGc(),
  cpu: () => process.cpuUsage(),
  counts: () => ({ connections: server.openConnections, online: server.local.onlineUids }),
});
process.send?.({ ready: true, port });

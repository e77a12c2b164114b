/**
 * uidpush with its server API and inner text port on, for bench/http.ts: the library's
 * createServer as in servers/uidpush.ts (rate limit off, 16 MiB send buffer), plus the
 * HTTP API on a free loopback port with the key from BENCH_API_KEY, and the inner text
 * port on a free port. The ready message carries the three ports.
 */
import { createServer } from '../../src/index.js';
import { memoryAfterGc, serve } from '../lib/ipc.js';

const apiKey = process.env.BENCH_API_KEY;
if (apiKey === undefined || apiKey.length < 16) throw new Error('set BENCH_API_KEY (at least 16 characters)');

const server = createServer({
  host: '127.0.0.1',
  port: 0,
  rateLimit: 0,
  maxBufferedBytes: 16 * 1024 * 1024,
  apiHost: '127.0.0.1',
  apiPort: 0,
  apiKey,
  innerPort: 0,
});
const address = await server.listen();
if (address.api === undefined || address.inner === undefined) throw new Error('API or inner port not listening');
serve({
  memory: () => memoryAfterGc(),
  cpu: () => process.cpuUsage(),
  counts: () => ({ connections: server.openConnections, online: server.local.onlineUids }),
  stats: () => server.stats(),
});
process.send?.({ ready: true, port: address.port, apiPort: address.api.port, innerPort: address.inner.port });

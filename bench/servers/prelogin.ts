/**
 * uidpush for the pre-login memory bench: createServer with the defaults, plus the options
 * given as JSON in BENCH_OPTIONS (the bench sets maxPreLoginMessageSize and loginTimeout).
 */
import { createServer, type ServerOptions } from '../../src/index.js';
import { memoryAfterGc, serve } from '../lib/ipc.js';

const options = JSON.parse(process.env.BENCH_OPTIONS ?? '{}') as ServerOptions;
const server = createServer({ host: '127.0.0.1', port: 0, apiPort: null, ...options });
const { port } = await server.listen();
serve({
  memory: () => memoryAfterGc(),
  counts: () => ({ connections: server.openConnections }),
});
process.send?.({ ready: true, port });

// A node:cluster worker for the broker contract: the same IPC broker that
// `uidpush serve --workers N` gives its workers, but each worker listens on its own
// loopback address (UIDPUSH_TEST_HOST), so the suite can put a client on a chosen
// worker. Port 0 on distinct addresses: distinct handles in the primary, no port race.
import { createIpcBroker } from '../../src/broker/ipc.js';
import { createServer } from '../../src/index.js';

const host = process.env.UIDPUSH_TEST_HOST ?? '127.0.0.1';
// Extra options as JSON (the contract's group caps).
const extra = JSON.parse(process.env.UIDPUSH_TEST_OPTIONS ?? '{}') as Record<string, unknown>;
const server = createServer({ host, port: 0, apiHost: host, apiPort: 0, shutdownGrace: 200, ...extra, broker: createIpcBroker() });
// The contract waits for a close to be recorded by this event, not by polling presence.
server.on('offline', (uid) => process.send?.({ harness: 'offline', uid }));
const { port, api } = await server.listen();
process.send?.({ harness: 'listening', url: `ws://${host}:${port}`, api: `http://${host}:${api?.port ?? 0}` });

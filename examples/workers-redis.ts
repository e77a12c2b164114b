// Embedding with workers: one uidpush server per CPU core, all on one port, joined into
// one cluster through Redis. `uidpush serve --workers N` does the same without Redis (its
// primary relays between the workers); embed it this way when your program forks its own
// workers, or when the workers must also reach servers on other machines.
//
// Run: npx tsx examples/workers-redis.ts   (PORT, API_PORT, REDIS_URL, WORKERS to change)
// Programs outside this repository import from 'uidpush' instead of '../src/index.js'.
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { createServer } from '../src/index.js';

const port = Number(process.env.PORT ?? 1234);
const apiPort = Number(process.env.API_PORT ?? 1235);
const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const workers = Number(process.env.WORKERS ?? availableParallelism());

if (cluster.isPrimary) {
  let ready = 0;
  for (let i = 0; i < workers; i++) {
    cluster.fork().on('message', (msg: { example?: string; port?: number; api?: number }) => {
      if (msg.example !== 'listening' || ++ready !== workers) return;
      console.log(
        `listening on ws://127.0.0.1:${String(msg.port)}, API on http://127.0.0.1:${String(msg.api)}, ${String(workers)} workers`,
      );
    });
  }
  // A worker that dies is replaced: its users reconnect to the others meanwhile.
  cluster.on('exit', (worker, code, signal) => {
    if (signal === 'SIGTERM' || code === 0) return;
    console.error(`worker ${String(worker.process.pid)} died (${signal} ${String(code)}), forking another`);
    cluster.fork();
  });
  process.once('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
  });
} else {
  // Every worker listens on the same ports; node:cluster hands each connection to one.
  // Port 0 works as well: the workers share the one free port the primary picks.
  const server = createServer({ port, apiPort, redis, redisNamespace: process.env.REDIS_NAMESPACE ?? 'uidpush' });
  const address = await server.listen();
  process.send?.({ example: 'listening', port: address.port, api: address.api?.port });
  process.once('SIGTERM', () => {
    void server.close().then(() => process.exit(0));
  });
}

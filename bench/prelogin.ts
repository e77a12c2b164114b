/**
 * What connections that never log in cost: `--n` connections (default 2,000), each holding
 * the largest unfinished frame the server allows before login, the server's RSS before
 * and after. Run twice: with `maxPreLoginMessageSize` at 1 MiB (the receive limit every
 * connection had before it existed) and at its default (16 KiB).
 *
 * Usage: npx tsx bench/prelogin.ts [--n 2000] [--concurrency 64]
 * The server and the clients are separate processes. Every loop is bounded.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ask } from './lib/ipc.js';
import { forkReady, stopChild } from './lib/proc.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '2000' }, concurrency: { type: 'string', default: '64' } },
});
const N = Number(values.n);
const CONCURRENCY = Number(values.concurrency);
if (!Number.isInteger(N) || N < 1 || N > 10_000) throw new Error('--n: an integer 1..10000');
if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1 || CONCURRENCY > 1000) throw new Error('--concurrency: 1..1000');

const here = import.meta.dirname;
async function start(
  script: string,
  env: Record<string, string> = {},
  execArgv: string[] = [],
): Promise<{ child: ChildProcess; port: number }> {
  const { child, ready } = await forkReady(join(here, script), { env, execArgv });
  return { child, port: ready.port ?? 0 };
}
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const MB = 1024 * 1024;

async function run(label: string, frameBytes: number): Promise<void> {
  // A login timeout far past the run, so nothing is freed while it is measured.
  const options = { maxPreLoginMessageSize: frameBytes, loginTimeout: 600_000 };
  const server = await start('servers/prelogin.ts', { BENCH_OPTIONS: JSON.stringify(options) }, ['--expose-gc']);
  const clients = await start('clients/unfinished.ts');
  const base = await ask<NodeJS.MemoryUsage>(server.child, 'memory');
  const t0 = performance.now();
  const opened = await ask<{ written: number; failed: number }>(clients.child, 'open', {
    port: server.port,
    count: N,
    frameBytes,
    concurrency: CONCURRENCY,
  });
  // The writes are done; wait (at most 30 s) until the server has read them: RSS steady.
  let memory = await ask<NodeJS.MemoryUsage>(server.child, 'memory');
  for (let i = 0; i < 60; i++) {
    await sleep(500);
    const again = await ask<NodeJS.MemoryUsage>(server.child, 'memory');
    const steady = Math.abs(again.rss - memory.rss) < 0.01 * memory.rss;
    memory = again;
    if (steady) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const { connections } = await ask<{ connections: number }>(server.child, 'counts');
  console.log(
    `${label}: frame ${frameBytes} B, ${opened.written} connections holding it (${opened.failed} failed, ${connections} open at the server), ` +
      `RSS ${(base.rss / MB).toFixed(0)} -> ${(memory.rss / MB).toFixed(0)} MB (+${((memory.rss - base.rss) / MB).toFixed(0)} MB), ` +
      `array buffers +${((memory.arrayBuffers - base.arrayBuffers) / MB).toFixed(0)} MB, ${seconds.toFixed(1)} s`,
  );
  await ask(clients.child, 'close');
  await stopChild(server.child);
  await stopChild(clients.child);
}

await run('before (1 MiB, the old limit)', MB);
await run('after (16 KiB, the default)', 16 * 1024);

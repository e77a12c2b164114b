/**
 * uidpush as `serve --workers N` (BENCH_WORKERS, default 2): the CLI with the bench's
 * settings (rate limit off, 16 MiB send buffers), started as a child of this process,
 * which answers the orchestrator for it. Memory is the RSS of the primary and its workers
 * together, read from /proc without a forced GC (the workers are not this process's to
 * collect), so it carries garbage the single-process figures do not; CPU is their user +
 * system time; counts come from the API's `GET /v1/stats`.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { serve } from '../lib/ipc.js';
import { childPids, processCpuSeconds } from '../lib/proc.js';

const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const root = join(import.meta.dirname, '..', '..');
const cli = spawn(
  process.execPath,
  [
    // The built CLI, as users run it (`npm run bench` builds first).
    'dist/cli/main.js',
    'serve',
    '--host',
    '127.0.0.1',
    '--port',
    String(Number(process.env.BENCH_PORT ?? 0)),
    '--api-port',
    '0',
    '--rate-limit',
    '0',
    '--max-buffered-bytes',
    String(16 * 1024 * 1024),
    '--workers',
    String(WORKERS),
    '--log-level',
    'info',
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
);
const primary = cli.pid ?? 0;
process.on('exit', () => cli.kill('SIGKILL'));
process.on('disconnect', () => {
  cli.kill('SIGTERM');
});

const pids = (): number[] => [primary, ...childPids(primary)];
const rssBytes = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'latin1'));
    return Number(m?.[1] ?? NaN) * 1024;
  } catch {
    return NaN;
  }
};

const ports = { port: 0, api: 0, listening: 0 };
await new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => {
    reject(new Error(`serve --workers ${String(WORKERS)}: ${String(ports.listening)} 'listening' lines in 120 s`));
  }, 120_000);
  cli.once('exit', (code) => {
    reject(new Error(`serve --workers exited (${String(code)}) before listening`));
  });
  createInterface({ input: cli.stdout }).on('line', (line) => {
    let entry: { msg?: string; port?: number; api?: { port?: number } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.msg !== 'listening') return;
    ports.port = entry.port ?? 0;
    ports.api = entry.api?.port ?? 0;
    if (++ports.listening === WORKERS) {
      clearTimeout(timer);
      resolve();
    }
  });
});

serve({
  memory: () => {
    const rss = pids()
      .map(rssBytes)
      .reduce((a, b) => a + b, 0);
    return { rss, heapUsed: NaN, heapTotal: NaN, external: NaN, arrayBuffers: NaN } satisfies NodeJS.MemoryUsage;
  },
  cpu: () => {
    const seconds = pids()
      .map(processCpuSeconds)
      .reduce((a, b) => a + b, 0);
    return { user: seconds * 1e6, system: 0 } satisfies NodeJS.CpuUsage;
  },
  counts: async () => {
    const res = await fetch(`http://127.0.0.1:${String(ports.api)}/v1/stats`, { signal: AbortSignal.timeout(10_000) });
    const stats = (await res.json()) as { connections?: number; onlineUids?: number };
    return { connections: stats.connections ?? NaN, online: stats.onlineUids ?? NaN };
  },
});
process.send?.({ ready: true, port: ports.port });

import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';

/** A request to a bench child and its answer, matched by id. */
export interface Request {
  id: number;
  cmd: string;
  args?: unknown;
}

export interface Reply {
  id: number;
  result?: unknown;
  error?: string;
}

let nextId = 1;

/** Sends `cmd` to a child and resolves with its reply. */
export function ask<T>(child: ChildProcess, cmd: string, args?: unknown, timeoutMs = 600_000): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off('message', onMessage);
      reject(new Error(`${cmd}: no answer in ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (msg: unknown): void => {
      const reply = msg as Reply;
      if (typeof reply !== 'object' || reply.id !== id) return;
      clearTimeout(timer);
      child.off('message', onMessage);
      if (reply.error !== undefined) reject(new Error(`${cmd}: ${reply.error}`));
      else resolve(reply.result as T);
    };
    child.on('message', onMessage);
    child.send({ id, cmd, args } satisfies Request);
  });
}

/** In a child: answers requests with `handlers`. */
export function serve(handlers: Record<string, (args: unknown) => unknown>): void {
  process.on('message', (msg: unknown) => {
    const req = msg as Request;
    const handler = handlers[req.cmd];
    if (handler === undefined) {
      process.send?.({ id: req.id, error: `unknown command ${req.cmd}` } satisfies Reply);
      return;
    }
    Promise.resolve()
      .then(() => handler(req.args))
      .then(
        (result) => process.send?.({ id: req.id, result } satisfies Reply),
        (err: unknown) => process.send?.({ id: req.id, error: String(err) } satisfies Reply),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

/** A clock shared by processes on one machine, in ms with sub-ms precision. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** Memory of this process after full garbage collection. */
export function memoryAfterGc(): NodeJS.MemoryUsage {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage();
}

/** Writes a heap snapshot of this process after GC (to `dir`), for `bench/heap.ts`; returns its path. */
export function heapSnapshotAfterGc(dir: string): string {
  memoryAfterGc();
  return writeHeapSnapshot(join(dir, `server-${String(process.pid)}-${String(Date.now())}.heapsnapshot`));
}

/** The q-quantile (0..1) of sorted values. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** One JSON log line of `uidpush serve`. */
export interface LogLine {
  msg: string;
  pid: number;
  port?: number;
  api?: { port: number };
}

/** A running `uidpush serve --workers n`. */
export interface Workers {
  primary: ChildProcess;
  ws: string;
  api: string;
  pids: number[];
  lines: LogLine[];
}

/** `uidpush serve --workers n`, started by `start` and killed by `cleanup()` in afterEach. */
export function workersBed(): { start: (n: number, env?: NodeJS.ProcessEnv, args?: string[]) => Promise<Workers>; cleanup: () => void } {
  const children: ChildProcess[] = [];
  return {
    /** Resolves once every worker listens; `env` adds `UIDPUSH_*` settings, `args` more flags. */
    start: (n, env = {}, args = []) => {
      const primary = spawn(
        process.execPath,
        ['--import', 'tsx', MAIN, 'serve', '--workers', String(n), '--port', '0', '--api-port', '0', ...args],
        { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
      );
      children.push(primary);
      const lines: LogLine[] = [];
      return new Promise((resolve, reject) => {
        createInterface({ input: primary.stdout as NodeJS.ReadableStream }).on('line', (text) => {
          const line = JSON.parse(text) as LogLine;
          lines.push(line);
          const listening = lines.filter((l) => l.msg === 'listening');
          if (line.msg === 'listening' && listening.length === n) {
            resolve({
              primary,
              ws: `ws://127.0.0.1:${line.port ?? 0}`,
              api: `http://127.0.0.1:${line.api?.port ?? 0}`,
              pids: listening.map((l) => l.pid),
              lines,
            });
          }
        });
        primary.once('exit', (code) => {
          reject(new Error(`primary exited with ${String(code)}`));
        });
      });
    },
    cleanup: () => {
      for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

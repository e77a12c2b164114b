import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** Runs the uidpush CLI (from source, through tsx) to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

/** A running `uidpush serve` (one process): its URLs and JSON log lines. */
export interface Served {
  child: ChildProcess;
  ws: string;
  api: string;
  lines: Record<string, unknown>[];
  /** Settles with the exit code or signal once the process is gone. */
  exited: Promise<number | string | null>;
}

/**
 * Starts `uidpush serve --port 0 --api-port 0 ...args` from source; resolves at its
 * `listening` log line, with the ports it prints. The caller kills it (by `child`).
 */
export function serveCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--port', '0', '--api-port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve(code ?? signal);
    });
  });
  const lines: Record<string, unknown>[] = [];
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      if (line.msg !== 'listening') return;
      const api = line.api as { port: number } | undefined;
      resolve({ child, ws: `ws://127.0.0.1:${String(line.port)}`, api: `http://127.0.0.1:${String(api?.port ?? 0)}`, lines, exited });
    });
    void exited.then((code) => {
      reject(new Error(`uidpush serve exited with ${String(code)} before listening`));
    });
  });
}

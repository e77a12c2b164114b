import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { twoNodes } from '../../examples/custom-broker.js';
import { connect, startServer, type TestClient } from '../helpers/clients.js';

// The examples are type-checked and linted with the rest (tsconfig.json includes them);
// here each one runs, so an example that compiles but no longer works fails the suite.
vi.setConfig({ testTimeout: 60_000 });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const clients: TestClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

type Line = Record<string, unknown>;

/**
 * examples/node-consumer.ts as a child process, its stdout parsed as JSON lines. `until`
 * waits for the `count`th line that passes `test`; `stop` sends SIGTERM and resolves with
 * the exit code once stdout is drained, so `lines` then holds everything it printed.
 */
function startConsumer(url: string, stateFile: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../examples/node-consumer.ts')], {
    env: { ...process.env, URL: url, UID: 'carol', DEVICE: 'worker-1', STATE_FILE: stateFile },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Line[] = [];
  const wake = new Set<() => void>();
  let closed = false;
  const done = new Promise<number | null>((resolve) => {
    child.once('close', (code) => {
      closed = true;
      for (const w of [...wake]) w();
      resolve(code);
    });
  });
  createInterface({ input: child.stdout }).on('line', (text) => {
    lines.push(JSON.parse(text) as Line);
    for (const w of [...wake]) w();
  });
  const until = (test: (line: Line) => boolean, count = 1, timeoutMs = 45_000): Promise<Line[]> =>
    new Promise((resolve, reject) => {
      const settle = (outcome: Line[] | Error): void => {
        clearTimeout(timer);
        wake.delete(check);
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const check = (): void => {
        const found = lines.filter(test);
        if (found.length >= count) settle(found);
        else if (closed) settle(new Error(`the consumer exited; it printed ${JSON.stringify(lines)}`));
      };
      const timer = setTimeout(() => {
        settle(new Error(`timed out; the consumer printed ${JSON.stringify(lines)}`));
      }, timeoutMs);
      wake.add(check);
      check();
    });
  const stop = (): Promise<number | null> => {
    if (!closed) child.kill('SIGTERM');
    return done;
  };
  return { lines, until, stop };
}

const isMessage = (line: Line): boolean => line.event === 'message';
const dataOf = (lines: Line[]): unknown[] => lines.filter(isMessage).map((line) => line.data);

describe('examples', () => {
  it('custom-broker: a push on one node reaches a uid on the other, and the wrapper counts the envelope', async () => {
    const { servers, brokers, addresses } = await twoNodes();
    try {
      const alice = await connect(`ws://127.0.0.1:${String(addresses[1]?.port)}`);
      clients.push(alice);
      await alice.login('alice');
      expect(await servers[0]?.push('alice', 'through the wrapper')).toEqual({ online: 1, connections: 1 });
      expect(await alice.next()).toBe('through the wrapper');
      expect(brokers[0].published.get('u')).toBe(1);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });

  it('workers-redis: workers on one port serve one cluster through Redis, and stop on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../../examples/workers-redis.ts')], {
      env: { ...process.env, PORT: '0', API_PORT: '0', WORKERS: '2', REDIS_URL, REDIS_NAMESPACE: `ex-${randomUUID()}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const lines = createInterface({ input: child.stdout });
      let ready: RegExpExecArray | null = null;
      for await (const line of lines) {
        ready = /ws:\/\/127\.0\.0\.1:(\d+), API on (http:\/\/127\.0\.0\.1:\d+), 2 workers/.exec(line);
        if (ready !== null) break;
      }
      const [, port, api] = ready ?? [];
      // Four devices of one uid, wherever node:cluster puts them: one push reaches all four.
      for (let i = 0; i < 4; i++) {
        const c = await connect(`ws://127.0.0.1:${port ?? ''}`);
        clients.push(c);
        await c.login('alice');
      }
      const res = await fetch(`${api ?? ''}/v1/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ uid: 'alice', data: 'to every device' }),
      });
      expect(await res.json()).toEqual({ online: 1, connections: 4 });
      for (const c of clients) expect(await c.next()).toBe('to every device');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('node-consumer: prints each push as a JSON line, and restarted with its state file replays what it missed, once', async () => {
    const started = await startServer({ inbox: true });
    const dir = await mkdtemp(join(tmpdir(), 'uidpush-consumer-'));
    const stateFile = join(dir, 'state.json');
    const running: ReturnType<typeof startConsumer>[] = [];
    try {
      const first = startConsumer(started.url, stateFile);
      running.push(first);
      expect(await first.until((l) => l.event === 'recovered')).toEqual([{ event: 'recovered', missed: 0 }]);
      for (let n = 1; n <= 3; n++) await started.server.push('carol', { n });
      await first.until(isMessage, 3);
      expect(await first.stop()).toBe(0);
      expect(dataOf(first.lines)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
      expect(first.lines.at(-1)).toEqual({ event: 'state', state: 'disconnected', reason: 'closed', willRetry: false });

      // The position is in the file, not only in the server's cursor (which the last ack moved).
      const saved = JSON.parse(await readFile(stateFile, 'utf8')) as Record<string, string>;
      expect(JSON.parse(saved[`uidpush:${started.url}:carol`] ?? 'null')).toMatchObject({ device: 'worker-1', offset: 3 });

      // Pushed while no consumer runs: retained in carol's inbox.
      for (let n = 4; n <= 5; n++) expect(await started.server.push('carol', { n })).toMatchObject({ online: 0 });

      const second = startConsumer(started.url, stateFile);
      running.push(second);
      expect(await second.until((l) => l.event === 'recovered')).toEqual([{ event: 'recovered', missed: 2 }]);
      await second.until(isMessage, 2);
      // A live push after the replay: a duplicate of 4 or 5 would be printed before it.
      await started.server.push('carol', { n: 6 });
      await second.until(isMessage, 3);
      expect(await second.stop()).toBe(0);
      expect(dataOf(second.lines)).toEqual([{ n: 4 }, { n: 5 }, { n: 6 }]);
      expect(second.lines.findIndex((l) => l.event === 'recovered')).toBeLessThan(second.lines.findIndex(isMessage));
      expect(second.lines.some((l) => l.event === 'unrecovered')).toBe(false);
    } finally {
      await Promise.all(running.map((c) => c.stop()));
      await started.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});

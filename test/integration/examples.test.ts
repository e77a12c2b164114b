import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { twoNodes } from '../../examples/custom-broker.js';
import { connect, type TestClient } from '../helpers/clients.js';

// The examples are type-checked and linted with the rest (tsconfig.json includes them);
// here each one runs, so an example that compiles but no longer works fails the suite.
vi.setConfig({ testTimeout: 60_000 });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const clients: TestClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

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
});

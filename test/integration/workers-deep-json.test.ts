import { afterEach, describe, expect, it } from 'vitest';
import { connect, connectV1, type TestClient } from '../helpers/clients.js';
import { workersBed, type Workers } from '../helpers/workers.js';

// Issue 9, item 1, under `--workers 2`: ten 2.8 KB frames of 1,400 nested arrays killed
// both workers and disconnected all 40 bystanders.

const ATTACK = `{"type":"broadcast","data":${'['.repeat(1400)}${']'.repeat(1400)}}`;
const bed = workersBed();
const clients: TestClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  bed.cleanup();
});

/** `uidpush serve --workers 2`; resolves once both workers listen. */
const twoWorkers = (): Promise<Workers> => bed.start(2);

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('uidpush serve --workers 2 under deeply nested frames', { timeout: 60_000 }, () => {
  it('answers ten 1,400-deep frames with bad_request; both workers stay up and every bystander is served', async () => {
    const { ws, api, pids, lines } = await twoWorkers();
    const bystanders: TestClient[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await connect(ws);
      clients.push(c);
      bystanders.push(await c.login(`bystander${i}`));
    }
    const attackers: TestClient[] = [];
    for (let i = 0; i < 10; i++) {
      const c = await connectV1(ws);
      clients.push(c);
      // Half before auth, half after.
      if (i % 2 === 1) {
        c.sendJson({ type: 'auth', uid: `attacker${i}` });
        expect(await c.nextJson()).toMatchObject({ type: 'welcome' });
      }
      attackers.push(c);
    }
    for (const c of attackers) c.send(ATTACK);
    for (const c of attackers) {
      expect(await c.nextJson()).toEqual({ type: 'error', code: 'bad_request', message: 'data nested deeper than 32 levels' });
    }
    for (const c of attackers) c.sendJson({ type: 'ping', id: 'alive' });
    for (const c of attackers) expect(await c.nextJson()).toEqual({ type: 'pong', id: 'alive' });

    expect(pids.every(alive)).toBe(true);
    expect(lines.filter((l) => l.msg === 'worker died; starting another')).toEqual([]);
    const stats = (await (await fetch(`${api}/v1/stats`)).json()) as { onlineUids: number };
    expect(stats.onlineUids).toBe(15);
    const res = await fetch(`${api}/v1/broadcast`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"data":"still served"}',
    });
    expect(res.status).toBe(200);
    for (const c of bystanders) expect(await c.next()).toBe('still served');
    expect(bystanders.every((c) => c.closeCode === undefined)).toBe(true);
  });
});

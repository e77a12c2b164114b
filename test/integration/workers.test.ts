import { afterEach, describe, expect, it } from 'vitest';
import { connect, eventually, type TestClient } from '../helpers/clients.js';
import { workersBed } from '../helpers/workers.js';

const bed = workersBed();
const clients: TestClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  bed.cleanup();
});

/** `uidpush serve --workers n`; resolves once every worker listens. */
const workers = bed.start;

async function json(url: string, init?: RequestInit): Promise<unknown> {
  return (await fetch(url, init)).json();
}

describe('uidpush serve --workers', { timeout: 60_000 }, () => {
  it('shares the port among workers and delivers across them through the primary', async () => {
    const { ws, api, pids } = await workers(3);
    expect(new Set(pids).size).toBe(3);
    const users = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(ws);
      clients.push(c);
      users.push(await c.login(`w${i}`));
    }
    // A login reply is sent once the primary's presence store counts it.
    expect(await json(`${api}/v1/stats`)).toMatchObject({ onlineUids: 6, connections: 6 });
    // Each API call lands on some worker; every uid is reached wherever it is.
    for (let i = 0; i < 6; i++) {
      const body = JSON.stringify({ uid: `w${i}`, data: `hello w${i}` });
      expect(await json(`${api}/v1/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).toEqual({
        online: 1,
        connections: 1,
      });
      expect(await users[i]?.next()).toBe(`hello w${i}`);
    }
    // Client to client across workers.
    users[0]?.send('w5:from w0');
    expect(await users[5]?.next()).toBe('from w0');
    users[1]?.send('all:everyone');
    for (const u of users) expect(await u.next()).toBe('everyone');
  });

  it('restarts a worker that dies, and its uids go offline at once', async () => {
    const { ws, api, pids, lines } = await workers(2);
    const mine: TestClient[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(ws);
      clients.push(c);
      mine.push(await c.login(`k${i}`));
    }
    expect(await json(`${api}/v1/stats`)).toMatchObject({ onlineUids: 6 });
    const victim = pids[0] ?? 0;
    process.kill(victim, 'SIGKILL');
    await eventually(() => {
      expect(mine.filter((c) => c.closeCode !== undefined).length).toBeGreaterThan(0);
      return Promise.resolve();
    });
    const survivors = mine.filter((c) => c.closeCode === undefined).length;
    await eventually(async () => {
      expect(await json(`${api}/v1/stats`)).toMatchObject({ onlineUids: survivors });
    }, 3000);
    await eventually(() => {
      expect(lines.some((l) => l.msg === 'worker died; starting another')).toBe(true);
      expect(lines.filter((l) => l.msg === 'listening').length).toBe(3);
      return Promise.resolve();
    });
  });

  it('stops every worker on SIGTERM and exits 0; clients get 1001', async () => {
    const { primary, ws } = await workers(2);
    const c = await connect(ws);
    clients.push(c);
    await c.login('bye');
    const exited = new Promise<number | null>((resolve) => primary.once('exit', resolve));
    primary.kill('SIGTERM');
    expect(await c.closed()).toBe(1001);
    expect(await exited).toBe(0);
  });

  it('leaves no worker behind when the primary is killed', async () => {
    const { primary, ws, pids } = await workers(2);
    const c = await connect(ws);
    clients.push(c);
    await c.login('orphan');
    primary.kill('SIGKILL');
    // node:cluster ends a worker whose primary is gone: no orphan keeps clients or ports.
    await eventually(() => {
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      return Promise.resolve();
    }, 5000);
    expect(await c.closed()).toBe(1006); // no close frame: the process is gone
  });
});

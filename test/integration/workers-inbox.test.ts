import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectV1, eventually, type TestClient } from '../helpers/clients.js';
import { workersBed } from '../helpers/workers.js';

// `uidpush serve --workers 2 --inbox` end to end: the primary keeps the one inbox, the
// workers append to it and replay from it, whichever worker a device lands on.

type Json = Record<string, unknown>;

const bed = workersBed();
const clients: TestClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  bed.cleanup();
});

async function call(api: string, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await res.json()) as Json;
}

async function device(ws: string, uid: string, auth: Json): Promise<{ client: TestClient; welcome: Json }> {
  const client = await connectV1(ws);
  clients.push(client);
  client.sendJson({ type: 'auth', uid, ...auth });
  const welcome = await client.nextJson(5000);
  expect(welcome.type, JSON.stringify(welcome)).toBe('welcome');
  return { client, welcome };
}

describe('uidpush serve --workers 2 --inbox', { timeout: 60_000 }, () => {
  it('replays the 100 pushes a device missed while its TCP was dead, in order, once, then a live one, on whichever worker it reconnects to', async () => {
    const { ws, api, pids } = await bed.start(2, {}, ['--inbox']);
    expect(new Set(pids).size).toBe(2);
    const { client: phone, welcome } = await device(ws, 'roamer', { device: 'phone' });
    expect(welcome).toMatchObject({ device: 'phone', recovered: true, missed: 0, inbox: { offset: 0 } });
    const epoch = (welcome.inbox as Json).epoch as string;
    expect(await call(api, 'POST', '/v1/push', { uid: 'roamer', data: 'first' })).toMatchObject({ online: 1, offset: 1, epoch });
    expect(await phone.nextJson()).toMatchObject({ type: 'message', offset: 1, epoch, data: 'first' });

    (phone.ws as unknown as { _socket: Socket })._socket.destroy();
    // The worker records the close and tells the primary on its own time: poll the
    // primary's presence (another process) until the uid is offline.
    await eventually(async () => {
      expect(await call(api, 'GET', '/v1/users/roamer')).toMatchObject({ online: false });
    });
    for (let i = 0; i < 100; i++) {
      expect(await call(api, 'POST', '/v1/push', { uid: 'roamer', data: { n: i } })).toMatchObject({ online: 0, offset: i + 2, epoch });
    }

    const again = await device(ws, 'roamer', { device: 'phone', since: { epoch, offset: 1 } });
    expect(again.welcome).toMatchObject({ device: 'phone', recovered: true, missed: 100, inbox: { epoch, offset: 101 } });
    const replayed: Json[] = [];
    for (let i = 0; i < 100; i++) replayed.push(await again.client.nextJson(5000));
    expect(replayed.map((m) => [m.type, m.offset, m.epoch])).toEqual(Array.from({ length: 100 }, (_, i) => ['message', i + 2, epoch]));
    expect(replayed.map((m) => (m.data as Json).n)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(await call(api, 'POST', '/v1/push', { uid: 'roamer', data: 'live' })).toMatchObject({ online: 1, offset: 102 });
    expect(await again.client.nextJson()).toMatchObject({ type: 'message', offset: 102, data: 'live' });
    // Read in order: a push written twice would have come before the live one.
    expect(again.client.received).toHaveLength(1 + 100 + 1);

    // Once more: node:cluster hands connections round robin, so this one lands on the other worker.
    (again.client.ws as unknown as { _socket: Socket })._socket.destroy();
    await eventually(async () => {
      expect(await call(api, 'GET', '/v1/users/roamer')).toMatchObject({ online: false });
    });
    for (let i = 0; i < 10; i++) await call(api, 'POST', '/v1/push', { uid: 'roamer', data: { n: 100 + i } });
    const third = await device(ws, 'roamer', { device: 'phone', since: { epoch, offset: 102 } });
    expect(third.welcome).toMatchObject({ recovered: true, missed: 10, inbox: { epoch, offset: 112 } });
    const tail: Json[] = [];
    for (let i = 0; i < 10; i++) tail.push(await third.client.nextJson(5000));
    expect(tail.map((m) => m.offset)).toEqual(Array.from({ length: 10 }, (_, i) => 103 + i));
    await call(api, 'POST', '/v1/push', { uid: 'roamer', data: 'live again' });
    expect(await third.client.nextJson()).toMatchObject({ offset: 113, data: 'live again' });
    expect(third.client.received).toHaveLength(1 + 10 + 1);
  });
});

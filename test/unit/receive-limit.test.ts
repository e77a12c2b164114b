import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { setReceiveLimit } from '../../src/transport/ws/receive-limit.js';
import { defaultIdleTimeout, resolveServerOptions } from '../../src/server/options.js';

const open: { close(): void }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o.close();
});

/** A ws server (maxPayload 1 MiB) and a client connected to it; the server side's socket. */
async function pair(): Promise<{ server: WebSocket; client: WebSocket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1024 * 1024 });
  open.push(wss);
  await once(wss, 'listening');
  const { port } = wss.address() as { port: number };
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  open.push({
    close: () => {
      client.terminate();
    },
  });
  const [server] = (await once(wss, 'connection')) as [WebSocket];
  // ws reports a refused frame as an error before it closes; the close is what is checked.
  server.on('error', () => undefined);
  await once(client, 'open');
  return { server, client };
}

describe('setReceiveLimit (pins the private ws field it relies on)', () => {
  it('finds the receiver field of this ws version on a connected socket', async () => {
    const { server } = await pair();
    expect(setReceiveLimit(server, 100)).toBe(true);
  });

  it('makes ws refuse a message over the new limit with 1009 and accept one under it', async () => {
    const { server, client } = await pair();
    setReceiveLimit(server, 100);
    client.send('a'.repeat(100));
    const [data] = (await once(server, 'message')) as [Buffer];
    expect(data.length).toBe(100);
    client.send('b'.repeat(101));
    const [code] = (await once(client, 'close')) as [number];
    expect(code).toBe(1009);
  });

  it('raises the limit again over the server-wide one', async () => {
    const { server, client } = await pair();
    setReceiveLimit(server, 100);
    setReceiveLimit(server, 2 * 1024 * 1024);
    client.send('c'.repeat(1024 * 1024 + 1));
    const [data] = (await once(server, 'message')) as [Buffer];
    expect(data.length).toBe(1024 * 1024 + 1);
  });

  it('answers false, touching nothing, on a socket ws has not set up', () => {
    const unset = Object.create(WebSocket.prototype) as WebSocket;
    expect(setReceiveLimit(unset, 100)).toBe(false);
  });
});

describe('idleTimeout default', () => {
  it('is derived from heartbeatInterval when unset: 60 s for the default 25 s', () => {
    expect(resolveServerOptions({}).idleTimeout).toBe(60_000);
    expect(resolveServerOptions({ heartbeatInterval: 1000 }).idleTimeout).toBe(12_000);
    expect(defaultIdleTimeout(5000)).toBe(20_000);
  });

  it('keeps an explicit value', () => {
    expect(resolveServerOptions({ heartbeatInterval: 1000, idleTimeout: 3000 }).idleTimeout).toBe(3000);
  });
});

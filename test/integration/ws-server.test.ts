import { once } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, dataUntil, testBed } from '../helpers/clients.js';
import { clientFrame } from '../helpers/frames.js';

const { setup, track, cleanup } = testBed();
afterEach(cleanup);

/** RFC 6455's sample key, and the accept it must get (section 1.3). */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** A raw TCP client; what it received, and when it closed. */
async function raw(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = track(createConnection({ host: '127.0.0.1', port: Number(new URL(url).port) }));
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks).toString('latin1'), closed };
}

function request(lines: string[]): string {
  return `${lines.join('\r\n')}\r\n\r\n`;
}

const GOOD = [
  'GET / HTTP/1.1',
  'Host: 127.0.0.1',
  'Upgrade: websocket',
  'Connection: Upgrade',
  `Sec-WebSocket-Key: ${KEY}`,
  'Sec-WebSocket-Version: 13',
];

/** The answer to a handshake of `lines`, once the server closed or switched protocols. */
async function answer(url: string, lines: string[]): Promise<string> {
  const r = await raw(url);
  const headed = dataUntil(r.socket, () => r.received().includes('\r\n\r\n'));
  r.socket.write(request(lines));
  await headed;
  return r.received();
}

describe('the handshake, as ws answered it', () => {
  it('switches protocols with the RFC accept, for versions 13 and 8, naming uidpush.v1 when offered', async () => {
    const { url } = await setup();
    const v13 = await answer(url, GOOD);
    expect(v13).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n/);
    expect(v13).toContain(`\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n`);
    expect(v13).not.toContain('Sec-WebSocket-Protocol');
    const v8 = await answer(url, [...GOOD.slice(0, -1), 'Sec-WebSocket-Version: 8']);
    expect(v8).toMatch(/^HTTP\/1.1 101 /);
    const v1 = await answer(url, [...GOOD, 'Sec-WebSocket-Protocol: other, uidpush.v1']);
    expect(v1).toContain('\r\nSec-WebSocket-Protocol: uidpush.v1\r\n');
  });

  it.each([
    ['a method other than GET', ['POST / HTTP/1.1', ...GOOD.slice(1)], /^HTTP\/1.1 405 [^]*Invalid HTTP method/],
    [
      'an Upgrade other than websocket',
      [...GOOD.slice(0, 2), 'Upgrade: h2c', ...GOOD.slice(3)],
      /^HTTP\/1.1 400 [^]*Invalid Upgrade header/,
    ],
    ['no key', GOOD.filter((l) => !l.startsWith('Sec-WebSocket-Key')), /^HTTP\/1.1 400 [^]*Sec-WebSocket-Key/],
    ['a malformed key', [...GOOD.slice(0, 4), 'Sec-WebSocket-Key: short==', GOOD[5] as string], /^HTTP\/1.1 400 [^]*Sec-WebSocket-Key/],
    [
      'version 12',
      [...GOOD.slice(0, -1), 'Sec-WebSocket-Version: 12'],
      /^HTTP\/1.1 400 [^]*Sec-WebSocket-Version: 13, 8\r\n[^]*Sec-WebSocket-Version header/,
    ],
    [
      'a malformed subprotocol list',
      [...GOOD, 'Sec-WebSocket-Protocol: uidpush.v1,,x'],
      /^HTTP\/1.1 400 [^]*Invalid Sec-WebSocket-Protocol header/,
    ],
    [
      'a subprotocol named twice',
      [...GOOD, 'Sec-WebSocket-Protocol: uidpush.v1, uidpush.v1'],
      /^HTTP\/1.1 400 [^]*Invalid Sec-WebSocket-Protocol header/,
    ],
  ])('refuses %s, and opens no connection', async (_name, lines, expected) => {
    const { url, server } = await setup();
    const r = await raw(url);
    r.socket.write(request(lines));
    await r.closed;
    expect(r.received()).toMatch(expected);
    expect(server.openConnections).toBe(0);
  });

  it('reads frames that came in the same packet as the request', async () => {
    const { url, server } = await setup();
    const r = await raw(url);
    const loggedIn = once(server, 'login');
    r.socket.write(Buffer.concat([Buffer.from(request(GOOD)), clientFrame(1, Buffer.from('alice'))]));
    await loggedIn;
    await dataUntil(r.socket, () => r.received().includes('login success, your uid is alice'));
  });
});

describe('the connection, as ws kept it', () => {
  it('echoes a client close frame with its code and reason, and reports them', async () => {
    const { url, server } = await setup();
    const c = track(await connect(url));
    const closed = once(server, 'close') as Promise<[{ code: number; reason: string }]>;
    c.ws.close(4000, 'bye');
    const [event] = await closed;
    expect(event).toMatchObject({ code: 4000, reason: 'bye' });
    expect(await c.closed()).toBe(4000);
    expect(c.closeReason).toBe('bye');
  });

  it('answers an empty close frame with an empty one: 1005 on both sides', async () => {
    const { url, server } = await setup();
    const c = track(await connect(url));
    const closed = once(server, 'close') as Promise<[{ code: number }]>;
    c.ws.close();
    expect((await closed)[0].code).toBe(1005);
    expect(await c.closed()).toBe(1005);
  });

  it('answers a ping with a pong of the same payload', async () => {
    const { url } = await setup();
    const c = track(await connect(url));
    const pong = once(c.ws, 'pong') as Promise<[Buffer]>;
    c.ws.ping('abc');
    expect((await pong)[0].toString()).toBe('abc');
  });

  it('reports 1006 and closes the socket when the peer ends it without a close frame', async () => {
    const { url, server } = await setup();
    const r = await raw(url);
    const opened = once(server, 'connection');
    r.socket.write(request(GOOD));
    await opened;
    const closed = once(server, 'close') as Promise<[{ code: number }]>;
    r.socket.end();
    expect((await closed)[0].code).toBe(1006);
    await r.closed;
  });

  it('closes with 1002 a frame that breaks the protocol, and serves the others', async () => {
    const { url, server } = await setup();
    const bob = track(await connect(url));
    await bob.login('bob');
    const r = await raw(url);
    const opened = once(server, 'connection');
    r.socket.write(request(GOOD));
    await opened;
    const closeFrame = dataUntil(r.socket, () => r.received().includes('\x88\x02\x03\xea'));
    // An unmasked text frame.
    r.socket.write(Buffer.from([0x81, 0x01, 0x61]));
    await closeFrame;
    bob.send('bob:still served');
    expect(await bob.next()).toBe('still served');
  });
});

describe('the handshake reader, before node:http', () => {
  it('completes a handshake sent one byte at a time, and the client logs in', async () => {
    const { url, server } = await setup();
    const r = await raw(url);
    const bytes = Buffer.from(request(GOOD));
    const switched = dataUntil(r.socket, () => r.received().includes('\r\n\r\n'));
    // One write per byte, each after the previous has left: the reader sees many reads.
    r.socket.setNoDelay(true);
    for (const byte of bytes) {
      await new Promise<void>((resolve) => {
        r.socket.write(Buffer.from([byte]), () => {
          resolve();
        });
      });
    }
    await switched;
    expect(r.received()).toContain(`\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n`);
    const loggedIn = once(server, 'login');
    r.socket.write(clientFrame(1, Buffer.from('alice')));
    await loggedIn;
    await dataUntil(r.socket, () => r.received().includes('login success, your uid is alice'));
  });

  it('hands a handshake it does not read (a repeated header) to node:http, which upgrades it the same way', async () => {
    const { url } = await setup();
    // node joins the two lines into "other, uidpush.v1": the v1 subprotocol is chosen.
    const answered = await answer(url, [...GOOD, 'Sec-WebSocket-Protocol: other', 'Sec-WebSocket-Protocol: uidpush.v1']);
    expect(answered).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n/);
    expect(answered).toContain('\r\nSec-WebSocket-Protocol: uidpush.v1\r\n');
    expect(answered).toContain(`\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n`);
  });

  it('hands a head over 8 KiB to node:http, which upgrades it under its own 16 KiB limit', async () => {
    const { url } = await setup();
    const answered = await answer(url, [...GOOD, `X-Padding: ${'a'.repeat(10_000)}`]);
    expect(answered).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n/);
  });

  it('closes without an answer a socket that sends FIN before any byte, and serves the others', async () => {
    const { url } = await setup();
    const bob = await connect(url);
    track(bob);
    await bob.login('bob');
    const r = await raw(url);
    r.socket.end();
    await r.closed;
    expect(r.received()).toBe('');
    bob.send('bob:still served');
    expect(await bob.next()).toBe('still served');
  });

  it('ends the sockets still reading a head when the server shuts down', async () => {
    const { url, server } = await setup();
    const r = await raw(url);
    r.closed.catch(() => undefined);
    const gone = new Promise<void>((resolve) => {
      r.socket.on('close', () => {
        resolve();
      });
    });
    r.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // node:http's close waits for every socket it was handed; this one it was not. It is
    // destroyed with its bytes unread, so the peer may see a reset.
    await server.close();
    await gone;
    expect(r.received()).toBe('');
  });
});

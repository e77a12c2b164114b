import { once } from 'node:events';
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { hs256, keyFiles, now, SECRET, signWith } from '../helpers/tokens.js';
import { connect, connectV1, dataUntil, testBed, type TestClient } from '../helpers/clients.js';
import { clientFrame } from '../helpers/frames.js';

const { setup, client, cleanup } = testBed();
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await cleanup();
});

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function upgradeRequest(path = '/', protocol?: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n` +
    (protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    '\r\n'
  );
}

/** A raw TCP client: what it received, and when it closed. */
interface Raw {
  socket: Socket;
  received: () => Buffer;
  closed: Promise<number>;
}
async function raw(url: string, localAddress?: string): Promise<Raw> {
  const { port } = new URL(url);
  const socket = createConnection({ host: '127.0.0.1', port: Number(port), localAddress });
  sockets.push(socket);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {
    // A reset by the server is one way of closing; 'close' follows.
  });
  const closed = new Promise<number>((resolve) => {
    socket.once('close', () => {
      resolve(Date.now());
    });
  });
  await once(socket, 'connect');
  return { socket, received: () => Buffer.concat(chunks), closed };
}
/** A raw client past the 101, which never answers anything the server sends. */
async function rawWebSocket(url: string, protocol?: string): Promise<Raw> {
  const r = await raw(url);
  const headed = dataUntil(r.socket, () => r.received().includes('\r\n\r\n'));
  r.socket.write(upgradeRequest('/', protocol));
  await headed;
  expect(r.received().toString('latin1')).toMatch(/^HTTP\/1.1 101 /);
  return r;
}
/** The header of a masked client text frame announcing `length` bytes, and its mask. */
function frameHeader(length: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x81;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  head.writeUInt32BE(0x01020304, 10);
  return head;
}
/** The close code of the first close frame the server sent after its 101, if any. */
function closeCodeIn(bytes: Buffer): number | undefined {
  const start = bytes.indexOf('\r\n\r\n') + 4;
  for (let i = start; i + 1 < bytes.length;) {
    const opcode = (bytes[i] as number) & 0x0f;
    const len = (bytes[i + 1] as number) & 0x7f;
    let offset = i + 2;
    let size = len;
    if (len === 126) {
      size = bytes.readUInt16BE(offset);
      offset += 2;
    }
    if (opcode === 0x8) return bytes.readUInt16BE(offset);
    i = offset + size;
  }
  return undefined;
}
/** Resolves with the HTTP status a refused handshake got, and its Retry-After. */
function refusedWith(url: string, localAddress?: string): Promise<{ status: number; retryAfter: string | undefined }> {
  const ws = new WebSocket(url, { localAddress });
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] });
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the handshake was accepted'));
    });
    ws.on('error', () => {
      // After unexpected-response, ws reports the abort; already settled.
    });
  });
}

describe('before login: a small receive limit', () => {
  it.each([
    ['seed', undefined],
    ['uidpush.v1', 'uidpush.v1'],
  ])('closes with 1009 an unfinished 1 MiB frame before login, refused at its header (%s)', async (_name, protocol) => {
    const { url, server } = await setup();
    const bob = await client(url, 'bob');
    const refused: string[] = [];
    server.on('refused', (_c, code) => refused.push(code));
    const r = await rawWebSocket(url, protocol);
    // 1 MiB announced, 1 KiB sent: a close now can only come from the header.
    const closeFrame = dataUntil(r.socket, () => closeCodeIn(r.received()) !== undefined);
    r.socket.write(Buffer.concat([frameHeader(1024 * 1024), Buffer.alloc(1024, 0x61)]));
    await closeFrame;
    expect(closeCodeIn(r.received())).toBe(1009);
    expect(refused).toEqual(['too_large']);
    void server.push('bob', 'still served');
    expect(await bob.next()).toBe('still served');
  });

  it('accepts an auth frame with a long token under the 16 KiB default, then a 100,000-byte message', async () => {
    const { url } = await setup({ jwtSecret: SECRET });
    const token = await hs256({ sub: 'alice', exp: now() + 600, pad: 'p'.repeat(11_500) });
    expect(token.length).toBeGreaterThan(15_000);
    const alice = await connectV1(url);
    alice.sendJson({ type: 'auth', token });
    expect(await alice.nextJson()).toMatchObject({ type: 'welcome', uid: 'alice' });
    const bob = await connect(`${url}/?token=${await hs256({ sub: 'bob', exp: now() + 600, rights: ['send'] })}`);
    const big = 'x'.repeat(100_000);
    bob.send(`alice:${big}`);
    expect(await alice.nextJson()).toMatchObject({ type: 'message', from: 'bob', data: big });
    alice.close();
    bob.close();
  });

  it('delivers a 100,000-byte seed message with the default limits', async () => {
    const { url } = await setup();
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    const big = 'y'.repeat(100_000);
    bob.send(`alice:${big}`);
    expect(await alice.next()).toBe(big);
  });

  it('applies maxPreLoginMessageSize before login only', async () => {
    const { url } = await setup({ maxPreLoginMessageSize: 1024 });
    const early = await client(url);
    early.send('x'.repeat(1025));
    expect(await early.closed()).toBe(1009);
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    bob.send(`alice:${'z'.repeat(5000)}`);
    expect(await alice.next()).toBe('z'.repeat(5000));
  });
});

describe('close grace', () => {
  it('destroys a client that ignores the login-timeout close frame within loginTimeout + closeGrace', async () => {
    const { url, server } = await setup({ loginTimeout: 300, closeGrace: 500, heartbeatInterval: 10_000 });
    const bob = await client(url, 'bob');
    const start = Date.now();
    const r = await rawWebSocket(url);
    const closedAt = await r.closed;
    expect(closeCodeIn(r.received())).toBe(4002);
    const elapsed = closedAt - start;
    // Not before the grace ran out (the peer never answered), and within one tick or two of it.
    expect(elapsed).toBeGreaterThanOrEqual(300 + 500);
    expect(elapsed).toBeLessThan(300 + 500 + 1000);
    expect(server.stats()).toMatchObject({ heartbeatCloses: 1, closeGraceTerminations: 1 });
    void server.push('bob', 'after');
    expect(await bob.next()).toBe('after');
  });

  it('destroys a client that ignores the 1009 close frame after closeGrace, not ws’s 30 s', async () => {
    const { url } = await setup({ closeGrace: 300 });
    const r = await rawWebSocket(url);
    const closeFrame = dataUntil(r.socket, () => closeCodeIn(r.received()) !== undefined);
    r.socket.write(frameHeader(1024 * 1024));
    await closeFrame;
    const refusedAt = Date.now();
    const closedAt = await r.closed;
    expect(closedAt - refusedAt).toBeLessThan(300 + 1000);
  });

  it('destroys a kicked client that ignores the close frame after closeGrace', async () => {
    const { url, server } = await setup({ closeGrace: 300 });
    const r = await rawWebSocket(url);
    const loggedIn = once(server, 'login');
    r.socket.write(clientFrame(1, 'alice'));
    await loggedIn;
    expect(server.local.isOnline('alice')).toBe(true);
    const kickedAt = Date.now();
    expect(await server.kick('alice', 'bye')).toBe(1);
    const closedAt = await r.closed;
    expect(closeCodeIn(r.received())).toBe(4501);
    expect(closedAt - kickedAt).toBeGreaterThanOrEqual(300);
    expect(closedAt - kickedAt).toBeLessThan(300 + 1000);
  });

  it('lets a client that answers the close frame close at once', async () => {
    const { url } = await setup({ loginTimeout: 100, closeGrace: 10_000 });
    const c = await client(url);
    expect(await c.closed(3000)).toBe(4002);
  });
});

describe('caps at the upgrade', () => {
  it('refuses the pending connection over maxPendingConnections with 503, and accepts again after one logs in', async () => {
    const { url, server } = await setup({ maxPendingConnections: 3 });
    const bob = await client(url, 'bob');
    const pending: TestClient[] = [await client(url), await client(url), await client(url)];
    expect(await refusedWith(url)).toEqual({ status: 503, retryAfter: '1' });
    await pending[0]?.login('alice');
    const next = await client(url);
    expect(next.ws.readyState).toBe(WebSocket.OPEN);
    expect(server.stats()).toMatchObject({ openConnections: 5, upgradesRefused: { pending: 1, per_ip: 0, handshake_rate: 0 } });
    void server.push('bob', 'served');
    expect(await bob.next()).toBe('served');
  });

  it('counts upgrades whose token is being verified as pending', async () => {
    // A JWKS that answers only when told: the handshakes wait on it.
    const keys = await keyFiles();
    const jwks = (await import('node:fs/promises')).readFile(keys.jwksPath, 'utf8');
    const waiting: ServerResponse[] = [];
    const jwksServer = createHttpServer((_req, res) => {
      waiting.push(res);
    });
    jwksServer.listen(0, '127.0.0.1');
    await once(jwksServer, 'listening');
    const jwksPort = (jwksServer.address() as { port: number }).port;
    try {
      const { url } = await setup({ jwks: `http://127.0.0.1:${jwksPort}/jwks.json`, maxPendingConnections: 2 });
      const token = await signWith(keys.rsa, 'RS256', { sub: 'alice', exp: now() + 600 }, 'rsa1');
      // The JWKS request listener above runs first: at this event, `waiting` holds it.
      const asked = once(jwksServer, 'request');
      const first = new WebSocket(`${url}/?token=${token}`);
      const second = new WebSocket(`${url}/?token=${token}`);
      first.on('error', () => undefined);
      second.on('error', () => undefined);
      await asked;
      expect((await refusedWith(`${url}/?token=${token}`)).status).toBe(503);
      const body = await jwks;
      for (const res of waiting) res.end(body);
      await Promise.all([once(first, 'open'), once(second, 'open')]);
      first.close();
      second.close();
    } finally {
      jwksServer.closeAllConnections();
      jwksServer.close();
    }
  });

  it('refuses a connection over maxConnectionsPerIp with 429, serves other addresses, and frees the slot at close', async () => {
    const { url, server } = await setup({ maxConnectionsPerIp: 2 });
    const a = await client(url, 'a');
    await client(url, 'b');
    expect(await refusedWith(url)).toEqual({ status: 429, retryAfter: '1' });
    expect(server.stats()).toMatchObject({ upgradesRefused: { per_ip: 1 } });
    expect(await server.metrics.registry.metrics()).toContain('uidpush_upgrades_refused_total{reason="per_ip"} 1');
    const other = await client(url, 'other', { localAddress: '127.0.0.2' });
    const aClosed = once(server, 'close');
    a.close();
    await aClosed;
    expect(server.openConnections).toBe(2);
    const again = await client(url, 'again');
    expect(again.ws.readyState).toBe(WebSocket.OPEN);
    void server.push('other', 'served');
    expect(await other.next()).toBe('served');
  });

  it('refuses handshakes over maxHandshakesPerIp per second with 429, and takes them again the next second', async () => {
    const { url, server } = await setup({ maxHandshakesPerIp: 3 });
    const bystander = await client(url, 'bystander', { localAddress: '127.0.0.2' });
    // The window may turn between two handshakes: try until three in a row fall in one.
    let refused: { status: number } | undefined;
    for (let round = 0; round < 5 && refused === undefined; round++) {
      const opened = await Promise.allSettled([connect(url), connect(url), connect(url)]);
      for (const o of opened) if (o.status === 'fulfilled') o.value.close();
      if (opened.some((o) => o.status === 'rejected')) continue;
      refused = await refusedWith(url).catch(() => undefined);
    }
    expect(refused).toMatchObject({ status: 429 });
    // The window is one second: within about that, a handshake is taken again.
    const deadline = Date.now() + 3000;
    let back: TestClient | undefined;
    while (back === undefined && Date.now() < deadline) back = await connect(url).catch(() => undefined);
    expect(back?.ws.readyState).toBe(WebSocket.OPEN);
    back?.close();
    void server.push('bystander', 'served');
    expect(await bystander.next()).toBe('served');
  });
});

describe('a socket half-closed during the handshake', () => {
  it('is closed when the request is partial', async () => {
    const { url } = await setup();
    const r = await raw(url);
    r.socket.end('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr');
    await r.closed;
    expect(r.received().toString('latin1')).toMatch(/^HTTP\/1.1 400 /);
  });

  it('is closed within the login timeout when the request never completes and the peer stays', async () => {
    const { url, server } = await setup({ loginTimeout: 300 });
    const bystander = await client(url, 'bystander');
    const r = await raw(url);
    const start = Date.now();
    r.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr');
    const closedAt = await r.closed;
    // The sweep runs every quarter of the timeout; allow it and a loaded box.
    expect(closedAt - start).toBeGreaterThanOrEqual(250);
    expect(closedAt - start).toBeLessThan(3000);
    expect(r.received().toString('latin1')).toMatch(
      /^HTTP\/1.1 408 Request Timeout\r\n[^]*\r\n\r\nuidpush: handshake not received within loginTimeout\n$/,
    );
    void server.push('bystander', 'still served');
    expect(await bystander.next()).toBe('still served');
  });

  it('answers 408 to each of 200 sockets holding a partial head, while a bystander connects and is served', async () => {
    const { url, server } = await setup({ loginTimeout: 500 });
    const slow = await Promise.all(Array.from({ length: 200 }, () => raw(url)));
    for (const [i, r] of slow.entries()) r.socket.write(i % 2 === 0 ? 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr' : 'GE');
    // A newcomer during the flood: its handshake is read and completed at once.
    const bystander = await client(url, 'bystander');
    void server.push('bystander', 'served during the flood');
    expect(await bystander.next()).toBe('served during the flood');
    await Promise.all(slow.map((r) => r.closed));
    for (const r of slow) expect(r.received().toString('latin1')).toMatch(/^HTTP\/1.1 408 Request Timeout\r\n/);
    void server.push('bystander', 'still served');
    expect(await bystander.next()).toBe('still served');
  });

  it('is closed when the peer sends FIN while its handshake token is being verified', async () => {
    const keys = await keyFiles();
    const body = await (await import('node:fs/promises')).readFile(keys.jwksPath, 'utf8');
    const waiting: ServerResponse[] = [];
    const jwksServer = createHttpServer((_req, res) => {
      waiting.push(res);
    });
    jwksServer.listen(0, '127.0.0.1');
    await once(jwksServer, 'listening');
    const jwksPort = (jwksServer.address() as { port: number }).port;
    try {
      const { url, server } = await setup({ jwks: `http://127.0.0.1:${jwksPort}/jwks.json` });
      const token = await signWith(keys.rsa, 'RS256', { sub: 'alice', exp: now() + 600 }, 'rsa1');
      const r = await raw(url);
      const asked = once(jwksServer, 'request');
      const connClosed = new Promise<void>((resolve) =>
        server.once('close', () => {
          resolve();
        }),
      );
      r.socket.end(upgradeRequest(`/?token=${token}`));
      await asked;
      for (const res of waiting) res.end(body);
      await r.closed;
      // Accepted after the check, the connection is closed with its socket: its close event.
      if (server.openConnections !== 0) await connClosed;
      expect(server.openConnections).toBe(0);
    } finally {
      jwksServer.closeAllConnections();
      jwksServer.close();
    }
  });
});

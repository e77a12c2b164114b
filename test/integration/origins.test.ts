import { createConnection } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createServer, ProgramErrorCode, UidpushError } from '../../src/index.js';
import { testBed } from '../helpers/clients.js';
import { hs256, SECRET } from '../helpers/tokens.js';

const { setup, client, cleanup } = testBed();
afterEach(cleanup);

/** A raw WebSocket upgrade request; resolves with the status line and body the server answered. */
function rawUpgrade(url: string, headers: Record<string, string>): Promise<{ status: string; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    // The server closes the socket after a refusal; a 101 leaves it open, so stop at it.
    socket.on('end', () => {
      resolve({ status: text.split('\r\n')[0] ?? '', text });
    });
    socket.on('data', () => {
      if (text.startsWith('HTTP/1.1 101')) {
        socket.destroy();
        resolve({ status: text.split('\r\n')[0] ?? '', text });
      }
    });
    const lines = [
      'GET / HTTP/1.1',
      `Host: ${hostname}:${port}`,
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ];
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

/** What a ws client with `origin` gets: 'open', or the HTTP status of the refusal. */
function handshake(url: string, origin: string | undefined, headers: Record<string, string> = {}): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, origin === undefined ? { headers } : { origin, headers });
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('error', reject);
  });
}

describe('WebSocket Origin check, token auth off (the defaults)', () => {
  it('refuses a page of another origin with 403 before the upgrade, and the bystander is still served', async () => {
    const { url, server } = await setup();
    const bystander = await client(url, 'alice');
    expect(await handshake(url, 'https://evil.example')).toBe(403);
    expect(await handshake(url, 'null')).toBe(403);
    expect(await handshake(url, 'http://localhost.evil.example:1234')).toBe(403);
    const raw = await rawUpgrade(url, { Origin: 'https://evil.example' });
    expect(raw.status).toBe('HTTP/1.1 403 Forbidden');
    expect(raw.text).toContain('origin not allowed');
    // Version 8 carries the origin in Sec-WebSocket-Origin; ws still speaks it.
    expect((await rawUpgrade(url, { 'Sec-WebSocket-Origin': 'https://evil.example' })).status).toBe('HTTP/1.1 403 Forbidden');
    expect(server.openConnections).toBe(1);
    expect((await server.push('alice', 'still here')).connections).toBe(1);
    expect(await bystander.next()).toBe('still here');
  });

  it('accepts clients without an Origin and pages served from loopback, on any port', async () => {
    const { url } = await setup();
    expect(await handshake(url, undefined)).toBe('open');
    for (const origin of ['http://localhost:5173', 'http://127.0.0.1:3000', 'http://[::1]:8080', 'http://localhost', 'https://127.0.0.2']) {
      expect(await handshake(url, origin), origin).toBe('open');
    }
    expect((await rawUpgrade(url, {})).status).toBe('HTTP/1.1 101 Switching Protocols');
  });
});

describe('WebSocket Origin check, token auth on', () => {
  it('accepts any origin unless allowedOrigins is set: a page still needs a token', async () => {
    const { url } = await setup({ jwtSecret: SECRET });
    const token = await hs256({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 60 });
    expect(await handshake(`${url}/?token=${token}`, 'https://app.example.com')).toBe('open');
    expect(await handshake(url, 'https://evil.example')).toBe('open');
  });
});

describe('allowedOrigins', () => {
  it('accepts exactly the listed origins and patterns, and clients without an Origin', async () => {
    const { url, server } = await setup({
      allowedOrigins: ['https://*.example.com', 'https://example.org', 'http://localhost:*'],
    });
    const bystander = await client(url, 'bob');
    for (const origin of [
      'https://app.example.com',
      'https://a.b.example.com',
      'https://example.org',
      'http://localhost:9999',
      'HTTPS://APP.EXAMPLE.COM',
    ]) {
      expect(await handshake(url, origin), origin).toBe('open');
    }
    expect(await handshake(url, undefined)).toBe('open');
    for (const origin of [
      'https://example.com', // the domain itself is not a subdomain
      'http://app.example.com', // another scheme
      'https://app.example.com:8443', // another port
      'https://evilexample.com',
      'https://example.org.evil.example',
      'http://127.0.0.1:3000', // the list replaces the loopback default
      'null',
      'https://app.example.com, https://evil.example',
    ]) {
      expect(await handshake(url, origin), origin).toBe(403);
    }
    expect((await server.push('bob', 'served')).connections).toBe(1);
    expect(await bystander.next()).toBe('served');
  });

  it('takes * as any origin and null only when listed', async () => {
    const any = await setup({ allowedOrigins: ['*'] });
    expect(await handshake(any.url, 'https://evil.example')).toBe('open');
    await cleanup();
    const nul = await setup({ allowedOrigins: ['null'] });
    expect(await handshake(nul.url, 'null')).toBe('open');
    expect(await handshake(nul.url, 'http://localhost:1')).toBe(403);
  });

  it('refuses to start with an entry that is not an origin or pattern', () => {
    for (const entry of ['example.com', 'https://*', 'https://a*.example.com', 'https://example.com/path', '']) {
      let thrown: unknown;
      try {
        createServer({ allowedOrigins: [entry] });
      } catch (err) {
        thrown = err;
      }
      expect(thrown, entry).toBeInstanceOf(UidpushError);
      expect((thrown as UidpushError).code).toBe(ProgramErrorCode.InvalidConfig);
      expect((thrown as UidpushError).message).toContain('allowedOrigins');
    }
  });
});

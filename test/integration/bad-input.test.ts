import { createConnection } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { testBed } from '../helpers/clients.js';

const { setup, client, cleanup } = testBed();
afterEach(cleanup);

describe('bad input', () => {
  it('answers a message with no colon with bad_request and keeps the connection', async () => {
    const { url } = await setup();
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    alice.send('bob');
    expect(await alice.next()).toBe('error: bad_request expected <uid>:<message>');
    await bob.nothingFor();
    alice.send('bob:after the error');
    expect(await bob.next()).toBe('after the error');
  });

  it('answers an empty uid with bad_request', async () => {
    const { url } = await setup();
    const alice = await client(url, 'alice');
    alice.send(':hey');
    expect(await alice.next()).toBe('error: bad_request empty uid');
  });

  it('refuses an empty login and lets the client try again', async () => {
    const { url } = await setup();
    const c = await client(url);
    c.send('');
    expect(await c.next()).toBe('error: bad_request empty uid');
    await c.login('carol');
  });

  it('refuses a uid over the length cap, at login and as a target', async () => {
    const { url } = await setup({ maxUidLength: 8 });
    const c = await client(url);
    c.send('123456789');
    expect(await c.next()).toBe('error: bad_request uid longer than 8 bytes');
    await c.login('12345678');
    c.send('123456789:hi');
    expect(await c.next()).toBe('error: bad_request uid longer than 8 bytes');
  });

  it('refuses uids that could never be addressed: all, colons, control characters', async () => {
    const { url } = await setup();
    const c = await client(url);
    c.send('all');
    expect(await c.next()).toBe("error: bad_request uid 'all' is reserved for broadcast");
    c.send('dave:x');
    expect(await c.next()).toBe("error: bad_request uid must not contain ':'");
    c.send('line\nbreak');
    expect(await c.next()).toBe('error: bad_request uid must not contain control characters');
  });

  it('answers a binary frame with bad_request, before and after login', async () => {
    const { url } = await setup();
    const c = await client(url);
    c.send(Buffer.from('carol'), true);
    expect(await c.next()).toBe('error: bad_request binary frames are not supported; send text');
    await c.login('carol');
    c.send(Buffer.from('carol:bin'), true);
    expect(await c.next()).toBe('error: bad_request binary frames are not supported; send text');
    await c.nothingFor();
  });

  it('closes with 1009 a message over maxMessageSize after login, counts it as too_large, and delivers nothing', async () => {
    const { url, server } = await setup({ maxMessageSize: 1024 });
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    const refused: string[] = [];
    server.on('refused', (_c, code) => refused.push(code));
    alice.send(`bob:${'x'.repeat(1100)}`);
    expect(await alice.closed()).toBe(1009);
    expect(refused).toEqual(['too_large']);
    bob.send('bob:small');
    expect(await bob.next()).toBe('small');
  });

  it('closes with 1009 a frame over the default 1 MiB, without buffering it', async () => {
    const { url, server } = await setup();
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    alice.send(`bob:${'x'.repeat(1024 * 1024 + 1)}`);
    expect(await alice.closed()).toBe(1009);
    expect(server.local.isOnline('bob')).toBe(true);
    await bob.nothingFor();
  });

  it('closes with 1007 a text frame that is not valid UTF-8', async () => {
    const { url } = await setup();
    const c = await client(url);
    // ws would refuse to send invalid text, so write the masked frame by hand.
    const payload = Buffer.from([0xff, 0xfe]);
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = payload.map((b, i) => b ^ (mask[i % 4] as number));
    const socket = (c.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    expect(await c.closed()).toBe(1007);
  });

  it('answers a flood over the rate limit with rate_limited, once per second', async () => {
    const { url, server } = await setup({ rateLimit: 10, rateBurst: 5 });
    const alice = await client(url, 'alice');
    const bob = await client(url, 'bob');
    let refused = 0;
    server.on('refused', (_c, code) => {
      if (code === 'rate_limited') refused++;
    });
    for (let i = 0; i < 50; i++) alice.send(`bob:${i}`);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) got.push(await bob.next()); // the login burst left 4 tokens
    expect(got).toEqual(['0', '1', '2', '3']);
    expect(await alice.next()).toBe('error: rate_limited more than 10 messages/s; messages dropped');
    await alice.nothingFor(100);
    expect(refused).toBe(46);
    await bob.nothingFor(50);
    // Other connections are not affected.
    bob.send('alice:unaffected');
    expect(await alice.next()).toBe('unaffected');
  });

  it('survives garbage bytes on the socket without touching other clients', async () => {
    const { url, server } = await setup();
    const bob = await client(url, 'bob');
    const port = Number(new URL(url).port);
    const raw = createConnection({ host: '127.0.0.1', port });
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n');
    raw.write('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await new Promise((resolve) => raw.once('data', resolve));
    raw.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4])); // reserved opcode 3
    await new Promise((resolve) => raw.once('close', resolve));
    bob.send('bob:still fine');
    expect(await bob.next()).toBe('still fine');
    expect(server.local.connections).toBe(1);
  });

  it('answers a plain HTTP request with 426 Upgrade Required', async () => {
    const { url } = await setup();
    const res = await fetch(url.replace('ws:', 'http:'));
    expect(res.status).toBe(426);
    expect(await res.text()).toMatch(/speaks WebSocket/);
  });
});

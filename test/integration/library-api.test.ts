import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode, createServer, UidpushError, type MessageEvent, type UidPage } from '../../src/index.js';
import { connect, offlineOf, startServer, type Started, type TestClient } from '../helpers/clients.js';

let started: Started | undefined;
const clients: TestClient[] = [];
async function client(url: string, uid?: string): Promise<TestClient> {
  const c = await connect(url);
  clients.push(c);
  if (uid !== undefined) await c.login(uid);
  return c;
}
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started?.stop();
});

describe('pushing, presence and kicks from the embedding program', () => {
  it('encodes a broadcast once and writes the same frame to every recipient', async () => {
    started = await startServer();
    const { url, server } = started;
    const members = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((u) => client(url, u)));
    const before = server.local.delivery;
    expect(await server.broadcast('to everyone')).toEqual({ connections: 5 });
    const after = server.local.delivery;
    expect(after.framesEncoded - before.framesEncoded).toBe(1);
    expect(after.framesWritten - before.framesWritten).toBe(5);
    for (const m of members) expect(await m.next()).toBe('to everyone');
  });

  it('encodes a push to many uids once', async () => {
    started = await startServer();
    const { url, server } = started;
    const a1 = await client(url, 'a');
    const a2 = await client(url, 'a');
    const b = await client(url, 'b');
    const before = server.local.delivery;
    expect(await server.push(['a', 'b', 'offline', 'a'], 'hello')).toEqual({
      online: 2,
      connections: 3,
    });
    expect(server.local.delivery.framesEncoded - before.framesEncoded).toBe(1);
    for (const c of [a1, a2, b]) expect(await c.next()).toBe('hello');
  });

  it('sends to a uid from the embedding program and reports the connections written', async () => {
    started = await startServer();
    const { url, server } = started;
    const a = await client(url, 'a');
    expect((await server.push('a', Buffer.from('bytes as text'))).connections).toBe(1);
    expect(await a.next()).toBe('bytes as text');
    expect((await server.push('nobody', 'x')).connections).toBe(0);
  });

  it('reports presence: isOnline, connectionsOf, onlineCount, connectionCount', async () => {
    started = await startServer();
    const { url, server } = started;
    await client(url, 'a');
    await client(url, 'a');
    await client(url, 'b');
    await client(url); // not logged in: not counted
    expect(server.local.isOnline('a')).toBe(true);
    expect(server.local.isOnline('z')).toBe(false);
    expect(server.local.connectionsOf('a')).toBe(2);
    expect(server.local.onlineUids).toBe(2);
    expect(server.local.connections).toBe(3);
    expect(server.openConnections).toBe(4);
  });

  it('kicks every connection of a uid with 4501 and leaves the others', async () => {
    started = await startServer();
    const { url, server } = started;
    const a1 = await client(url, 'a');
    const a2 = await client(url, 'a');
    const b = await client(url, 'b');
    expect(await server.kick('a', 'bye')).toBe(2);
    expect(server.local.isOnline('a')).toBe(false);
    expect(await a1.closed()).toBe(CloseCode.Kicked);
    expect(await a2.closed()).toBe(CloseCode.Kicked);
    expect(a1.closeReason).toBe('bye');
    expect(b.closeCode).toBeUndefined();
    expect(await server.kick('a')).toBe(0);
  });

  it('refuses a kick reason that does not fit a close frame, closing nothing', async () => {
    started = await startServer();
    const { url, server } = started;
    const a1 = await client(url, 'a');
    const a2 = await client(url, 'a');
    expect(() => server.kick('a', 'é'.repeat(62))).toThrow(expect.objectContaining({ code: 'UIDPUSH_ERR_INVALID_ARGUMENT' }));
    expect(server.local.connectionsOf('a')).toBe(2);
    expect(await server.kick('a', 'x'.repeat(123))).toBe(2);
    expect(await a1.closed()).toBe(CloseCode.Kicked);
    expect(await a2.closed()).toBe(CloseCode.Kicked);
  });

  it('pages through online uids with a cursor, each once, in code-point order', async () => {
    started = await startServer();
    const { url, server } = started;
    // Logged in out of order: the pages follow the uids' code points, not arrival.
    const uids = ['u3', 'u0', 'u6', 'Z', 'u1', 'u5', 'u2'];
    for (const u of uids) await client(url, u);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: UidPage = await server.listUids(cursor, 3);
      seen.push(...page.uids);
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(seen).toEqual(['Z', 'u0', 'u1', 'u2', 'u3', 'u5', 'u6']);
    expect(pages).toBe(3);
  });

  it('keeps a scan exact when earlier uids go offline between pages', async () => {
    started = await startServer();
    const { url, server } = started;
    const cs = [];
    for (const u of ['a', 'b', 'c', 'd', 'e']) cs.push(await client(url, u));
    const first = await server.listUids(null, 2);
    expect(first.uids).toEqual(['a', 'b']);
    const gone = offlineOf(server, 'a');
    cs[0]?.close();
    await gone;
    const second = await server.listUids(first.nextCursor, 10);
    expect(second.uids).toEqual(['c', 'd', 'e']);
    expect(second.nextCursor).toBeNull();
  });

  it('refuses an unreadable cursor', async () => {
    started = await startServer();
    await expect(started.server.listUids('not-a-cursor', 10)).rejects.toThrow(UidpushError);
  });
});

describe('events', () => {
  it('reports connection, login, message and close with typed payloads', async () => {
    started = await startServer();
    const { url, server } = started;
    const log: string[] = [];
    const messages: MessageEvent[] = [];
    server.on('connection', (c) => log.push(`connection ${c.id}`));
    const addresses: (string | undefined)[] = [];
    server.on('login', (c, uid) => {
      log.push(`login ${c.id} ${uid}`);
      addresses.push(c.remoteAddress);
    });
    server.on('message', (e) => messages.push(e));
    server.on('close', (e) => log.push(`close ${e.connection.id} ${e.uid} ${e.code}`));
    const a = await client(url, 'a');
    const b = await client(url, 'b');
    a.send('b:hi');
    await b.next();
    a.send('all:yo');
    await b.next();
    const closed = once(server, 'close');
    a.close();
    await closed;
    expect(log).toEqual(['connection 1', 'login 1 a', 'connection 2', 'login 2 b', 'close 1 a 1005']);
    expect(messages.map((m) => [m.from, m.scope, m.to, Buffer.isBuffer(m.data) ? m.data.toString() : m.data, m.delivered])).toEqual([
      ['a', 'uid', 'b', 'hi', 1],
      ['a', 'broadcast', null, 'yo', 2],
    ]);
    expect(messages[0]?.connection.uid).toBe('a');
    expect(addresses).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('lets the embedding program push to one connection', async () => {
    started = await startServer();
    const { url, server } = started;
    server.on('login', (c, uid) => c.push(`welcome ${uid}`));
    const a = await client(url, 'a');
    expect(await a.next()).toBe('welcome a');
  });
});

describe('createServer', () => {
  it('refuses invalid options with UIDPUSH_ERR_INVALID_CONFIG naming the field', () => {
    expect(() => createServer({ port: 70000 })).toThrow(/port: Too big/);
    try {
      createServer({ heartbeatInterval: 1000, idleTimeout: 500 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(UidpushError);
      expect((err as UidpushError).code).toBe('UIDPUSH_ERR_INVALID_CONFIG');
      expect((err as Error).message).toMatch(/idleTimeout: idleTimeout must be longer/);
    }
    // @ts-expect-error unknown options are refused, not ignored
    expect(() => createServer({ prot: 1 })).toThrow(/Unrecognized key/);
  });

  it('refuses to listen twice', async () => {
    started = await startServer();
    await expect(started.server.listen()).rejects.toMatchObject({ code: 'UIDPUSH_ERR_BAD_STATE' });
  });

  it('reports a port in use as a listen error', async () => {
    started = await startServer();
    const other = createServer({ port: started.server.address().port });
    await expect(other.listen()).rejects.toMatchObject({ code: 'UIDPUSH_ERR_LISTEN', listener: 'websocket', reason: 'EADDRINUSE' });
    await other.close();
  });
});

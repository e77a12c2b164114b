import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection, type ConnectionOwner } from '../../src/transport/connection.js';
import { clientFrame, closePayload } from '../helpers/frames.js';

const open: (Server | Socket)[] = [];
afterEach(() => {
  for (const o of open.splice(0)) {
    if ('destroy' in o) o.destroy();
    else o.close();
  }
});

/** What the owner heard from the connection. */
interface Heard {
  messages: string[];
  closing: number;
  closed: Promise<{ code: number; reason: string }>;
  errors: string[];
}

/** A connection over a real loopback socket pair (allowHalfOpen, as node:http's), and the peer's side. */
async function pair(limit = 1000): Promise<{ conn: Connection; peer: Socket; heard: Heard; received: () => Buffer }> {
  const server = createServer({ allowHalfOpen: true });
  open.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const peer = createConnection({ host: '127.0.0.1', port: (server.address() as { port: number }).port, allowHalfOpen: true });
  open.push(peer);
  const [socket] = await accepted;
  open.push(socket);
  const chunks: Buffer[] = [];
  peer.on('data', (d: Buffer) => chunks.push(d));
  let report: (r: { code: number; reason: string }) => void = () => undefined;
  const heard: Heard = {
    messages: [],
    closing: 0,
    closed: new Promise((resolve) => (report = resolve)),
    errors: [],
  };
  const owner: ConnectionOwner = {
    write: (c, frame) => c.writeFrame(frame),
    onMessage: (_c, data) => heard.messages.push(data.toString()),
    onClose: (_c, code, reason) => {
      report({ code, reason: reason.toString() });
    },
    onClosing: () => heard.closing++,
    onFrameError: (_c, code, error) => heard.errors.push(`${code} ${error}`),
  };
  const conn = new Connection(socket, '', limit);
  conn.owner = owner;
  conn.start(Buffer.alloc(0));
  return { conn, peer, heard, received: () => Buffer.concat(chunks) };
}

describe('Connection: the server side of the closing handshake', () => {
  it('echoes a client close frame, ends the socket, and reports the code and reason; closed by the client', async () => {
    const { conn, peer, heard, received } = await pair();
    peer.write(clientFrame(8, closePayload(4000, 'bye')));
    await once(peer, 'end');
    expect(received()).toEqual(Buffer.concat([Buffer.from([0x88, 5]), closePayload(4000, 'bye')]));
    expect(conn.readyState).toBe(Connection.CLOSING);
    expect(conn.closedBy).toBe('client');
    peer.end();
    expect(await heard.closed).toEqual({ code: 4000, reason: 'bye' });
    expect(conn.readyState).toBe(Connection.CLOSED);
    expect(heard.closing).toBe(1);
  });

  it('answers a close frame without a code with an empty one, and reports 1005', async () => {
    const { peer, heard, received } = await pair();
    peer.write(clientFrame(8));
    await once(peer, 'end');
    expect(received()).toEqual(Buffer.from([0x88, 0]));
    peer.end();
    expect((await heard.closed).code).toBe(1005);
  });

  it('on a server close sends the close frame and waits for the peer’s, then ends the socket', async () => {
    const { conn, peer, heard, received } = await pair();
    conn.close(4001, 'slow');
    expect(conn.readyState).toBe(Connection.CLOSING);
    expect(conn.closedBy).toBe('server');
    expect(conn.writeFrame(Buffer.from([0x81, 0]))).toBe(false);
    const ended = once(peer, 'end');
    peer.write(clientFrame(8, closePayload(4001)));
    await ended;
    expect(received()).toEqual(Buffer.concat([Buffer.from([0x88, 6]), closePayload(4001, 'slow')]));
    peer.end();
    expect(await heard.closed).toEqual({ code: 4001, reason: '' });
  });

  it('reports 1006 when the peer goes without a close frame, and ends its side on the peer’s FIN', async () => {
    const { conn, peer, heard } = await pair();
    const ended = once(peer, 'end');
    peer.end();
    await ended;
    expect((await heard.closed).code).toBe(1006);
    expect(conn.closedBy).toBeUndefined();
  });

  it('refuses a bad close code or a reason over 123 bytes by throwing, as ws did, and stays open', async () => {
    const { conn } = await pair();
    expect(() => {
      conn.close(1005);
    }).toThrow(TypeError);
    expect(() => {
      conn.close(4000, 'x'.repeat(124));
    }).toThrow(RangeError);
    expect(conn.isOpen).toBe(true);
  });

  it('closes with the parser’s code on a protocol error, without waiting for the peer, and tells the owner', async () => {
    const { conn, peer, heard, received } = await pair(10);
    const ended = once(peer, 'end');
    peer.write(clientFrame(1, 'x'.repeat(11)));
    await ended;
    expect(received()).toEqual(Buffer.concat([Buffer.from([0x88, 2]), closePayload(1009)]));
    expect(heard.errors).toEqual(['1009 too_large']);
    expect(conn.closedBy).toBe('server');
    peer.end();
    expect((await heard.closed).code).toBe(1006);
  });
});

describe('Connection: frames and the socket', () => {
  it('answers a ping with its payload, stamps lastSeen on pongs, and hands messages over', async () => {
    const { conn, peer, heard, received } = await pair();
    conn.lastSeen = 0;
    peer.write(Buffer.concat([clientFrame(9, 'hey'), clientFrame(10), clientFrame(1, 'text')]));
    while (heard.messages.length === 0) await once(conn.tcp, 'data');
    expect(heard.messages).toEqual(['text']);
    expect(conn.lastSeen).toBeGreaterThan(0);
    while (received().length < 5) await once(peer, 'data');
    expect(received()).toEqual(Buffer.concat([Buffer.from([0x8a, 3]), Buffer.from('hey')]));
  });

  it('destroys the socket on a socket error, without throwing, and reports 1006', async () => {
    const { conn, heard } = await pair();
    conn.tcp.emit('error', new Error('boom'));
    expect((await heard.closed).code).toBe(1006);
    expect(conn.tcp.destroyed).toBe(true);
  });

  it('terminate() destroys the socket at once', async () => {
    const { conn, heard } = await pair();
    conn.terminate();
    expect(conn.readyState).toBe(Connection.CLOSING);
    expect((await heard.closed).code).toBe(1006);
    expect(conn.readyState).toBe(Connection.CLOSED);
  });

  it('counts what waits in the socket as bufferedBytes', async () => {
    const { conn } = await pair();
    expect(conn.bufferedBytes).toBe(0);
    conn.tcp.cork();
    conn.writeFrame(Buffer.alloc(100));
    expect(conn.bufferedBytes).toBe(100);
    conn.tcp.uncork();
  });
});

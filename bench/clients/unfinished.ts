/**
 * Clients that never log in: each opens a raw WebSocket (net socket, hand-written
 * upgrade), then sends the header of a text frame of `frameBytes` and `frameBytes - 1`
 * bytes of it, and stops there, so the server holds the unfinished frame. `open` answers
 * once every socket has written all of it (or failed); `close` destroys them.
 */
import { createConnection, type Socket } from 'node:net';
import { serve } from '../lib/ipc.js';

interface OpenArgs {
  port: number;
  count: number;
  frameBytes: number;
  concurrency: number;
}

const sockets: Socket[] = [];

function header(length: number): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x81;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(length), 2);
  head.writeUInt32BE(0x01020304, 10);
  return head;
}

function open(args: OpenArgs): Promise<{ written: number; failed: number }> {
  // One buffer for every socket: the client's own memory stays flat.
  const frame = Buffer.concat([header(args.frameBytes), Buffer.alloc(args.frameBytes - 1, 0x61)]);
  const request =
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
  let next = 0;
  let written = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const finish = (): void => {
      if (written + failed === args.count) resolve({ written, failed });
      else launch();
    };
    const launch = (): void => {
      if (next >= args.count) return;
      next++;
      const socket = createConnection({ host: '127.0.0.1', port: args.port });
      sockets.push(socket);
      let settled = false;
      const settle = (ok: boolean): void => {
        if (settled) return;
        settled = true;
        if (ok) written++;
        else failed++;
        finish();
      };
      let head = '';
      socket.on('data', (d: Buffer) => {
        if (head.includes('\r\n\r\n')) return;
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (!head.startsWith('HTTP/1.1 101 ')) {
          settle(false);
          return;
        }
        socket.write(frame, (err) => {
          settle(err === undefined || err === null);
        });
      });
      socket.on('error', () => {
        settle(false);
      });
      socket.on('close', () => {
        settle(false);
      });
      socket.write(request);
    };
    for (let i = 0; i < Math.min(args.concurrency, args.count); i++) launch();
  });
}

serve({
  open: (args) => open(args as OpenArgs),
  close: () => {
    for (const s of sockets.splice(0)) s.destroy();
    return true;
  },
});
process.send?.({ ready: true });

/**
 * The slow-client attack of issue 9, item 3, against `uidpush serve` run under a file limit:
 * --slow API requests whose body never comes (a valid key, so they wait for the body), then
 * --clients new WebSocket clients that each log in and push to themselves. Reports how many
 * slow connections the server closed at once, how many clients were served, and when the
 * server had closed every slow connection.
 *
 * Usage: npx tsx bench/slow-api.ts [--limit 1024] [--slow 1100] [--clients 50] [-- <serve flags>]
 *   e.g. npx tsx bench/slow-api.ts -- --api-max-connections 500
 *
 * It ends the server it starts, and every socket it opens.
 */
import { spawn } from 'node:child_process';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';

const { values, positionals } = parseArgs({
  options: {
    limit: { type: 'string', default: '1024' },
    slow: { type: 'string', default: '1100' },
    clients: { type: 'string', default: '50' },
  },
  allowPositionals: true,
});
const limit = Number(values.limit);
const slowCount = Number(values.slow);
const clientCount = Number(values.clients);
const KEY = 'bench-slow-api-key-0123456789';
const main = join(import.meta.dirname, '../src/cli/main.ts');

const server = spawn('bash', [
  '-c',
  `ulimit -n ${limit} && exec "${process.execPath}" --import tsx "${main}" serve --port 0 --api-port 0 --api-key ${KEY} ${positionals.join(' ')}`,
]);
server.stderr.pipe(process.stderr);
const warnings: string[] = [];
const address = await new Promise<{ port: number; api: { port: number } }>((resolve, reject) => {
  createInterface({ input: server.stdout }).on('line', (line) => {
    const entry = JSON.parse(line) as { level: number; msg: string; port?: number; api?: { port: number } };
    if (entry.msg === 'listening') resolve(entry as { port: number; api: { port: number } });
    else if (entry.level >= 40) warnings.push(entry.msg);
  });
  server.once('exit', (code) => {
    reject(new Error(`uidpush serve exited with ${String(code)}`));
  });
});

const head =
  `POST /v1/push HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${KEY}\r\n` +
  'content-type: application/json\r\ncontent-length: 1000\r\n\r\n';
let closed = 0;
const slow: Socket[] = [];
const started = Date.now();
for (let i = 0; i < slowCount; i++) {
  const socket = createConnection({ host: '127.0.0.1', port: address.api.port });
  socket.on('error', () => {
    // counted by the close event
  });
  socket.on('close', () => closed++);
  socket.resume();
  socket.write(head);
  slow.push(socket);
  await new Promise((resolve) => socket.once('connect', resolve));
}
const closedAtOnce = closed;

let served = 0;
await Promise.all(
  Array.from(
    { length: clientCount },
    (_, i) =>
      new Promise<void>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${address.port}`);
        const timer = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 5000);
        ws.on('open', () => {
          ws.send(`u${i}`);
        });
        ws.on('message', (data: Buffer) => {
          const text = data.toString();
          if (text.startsWith('login success')) ws.send(`u${i}:push ${i}`);
          else if (text === `push ${i}`) {
            served++;
            clearTimeout(timer);
            ws.close();
            resolve();
          }
        });
        ws.on('error', () => {
          clearTimeout(timer);
          resolve();
        });
      }),
  ),
);

const deadline = Date.now() + 60_000;
while (closed < slowCount && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
const allClosedAfter = Date.now() - started;
for (const socket of slow) socket.destroy();
server.kill('SIGTERM');

console.log(`ulimit -n ${limit}, serve ${positionals.join(' ') || '(defaults)'}`);
for (const w of warnings) console.log(`  server warned: ${w}`);
console.log(`  slow API requests: ${slowCount}, closed by the server at once: ${closedAtOnce}`);
console.log(`  new WebSocket clients served (login + push): ${served} of ${clientCount}`);
console.log(
  closed < slowCount
    ? `  slow connections still open after 60 s: ${slowCount - closed}`
    : `  every slow connection closed by the server ${(allClosedAfter / 1000).toFixed(1)} s after the first opened`,
);

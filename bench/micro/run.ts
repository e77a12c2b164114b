/**
 * Micro-benches of the hot pure functions, sizes in their names. Each case runs for a
 * fixed time budget (after a warm-up) and reports operations per second and ns per
 * operation (the median of 5 samples). No sockets, no child processes; bounded: about
 * 0.4 s per case.
 *
 * Usage: npm run bench:micro [-- --filter <substring>] [--sample-ms 60]
 */
import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { decodeEnvelope, encodeEnvelope, encodePushes } from '../../src/broker/envelope.js';
import { MemoryInbox } from '../../src/broker/memory-inbox.js';
import { RETENTION_DEFAULTS } from '../../src/core/inbox.js';
import { Hub, type Recipient } from '../../src/delivery/hub.js';
import { PushFrames } from '../../src/delivery/push-frames.js';
import { encodeTextFrame } from '../../src/delivery/ws-frame.js';
import { Codec } from '../../src/protocol/codec.js';
import { parseClientFrame } from '../../src/protocol/json-v1.js';
import { parseCommand } from '../../src/protocol/seed-text.js';
import { Registry } from '../../src/registry/registry.js';
import { FrameParser, type FrameSink } from '../../src/transport/ws/frame-parser.js';
import { readRequestHead } from '../../src/transport/ws/request-head.js';
import { describeMachine } from '../lib/proc.js';
import { maskedTextFrame } from '../lib/raw-ws.js';

const { values } = parseArgs({ options: { filter: { type: 'string' }, 'sample-ms': { type: 'string', default: '60' } } });
const SAMPLE_MS = Number(values['sample-ms']);
if (!Number.isFinite(SAMPLE_MS) || SAMPLE_MS < 1 || SAMPLE_MS > 1000) throw new Error('--sample-ms: 1..1000');

interface Case {
  name: string;
  /** Runs the operation once; `ops` operations when it batches them (e.g. a fan-out). */
  fn: () => unknown;
  ops?: number;
}

const text = (bytes: number): string => 'x'.repeat(bytes);
const KiB = 1024;

class FakeRecipient implements Recipient {
  readonly codec: Codec;
  readonly bufferedBytes = 0;
  written = 0;
  attached = true;
  constructor(codec: Codec) {
    this.codec = codec;
  }
  writeFrame(frame: Buffer): boolean {
    this.written += frame.length;
    return true;
  }
  close(): void {
    // never closed here
  }
}

function hubWith(recipients: number, uids: number): Hub<FakeRecipient> {
  const registry = new Registry<FakeRecipient>();
  for (let i = 0; i < recipients; i++) registry.bind(new FakeRecipient(Codec.Seed), `u${String(i % uids)}`);
  return new Hub(registry, { maxBufferedBytes: 1 << 30, slowConsumerPolicy: 'drop' });
}

const t16 = text(16);
const t64 = text(64);
const t1k = text(KiB);
const t16k = text(16 * KiB);
const recipients10k = Array.from({ length: 10_000 }, (_, i) => new FakeRecipient(i % 2 === 0 ? Codec.Seed : Codec.JsonV1));
const hub10k = hubWith(10_000, 10_000);
const uids100 = Array.from({ length: 100 }, (_, i) => `user-${String(i)}`);
const envelope1k = encodeEnvelope('node-1', { t: 'push', uid: 'alice', data: text(1000), from: null, exp: Date.now() });
const seed64 = Buffer.from(`alice:${text(58)}`);
const v1Send256 = Buffer.from(JSON.stringify({ type: 'send', id: 1, to: 'alice', data: text(256 - 42) }));
const registry = new Registry<object>();
const conns100k = Array.from({ length: 100_000 }, () => ({}));
const uidNames100k = conns100k.map((_, i) => `u${String(i)}`);
// 10k uids with a few entries each, then one hot uid: what a busy uid costs among idle ones.
const inbox10k = new MemoryInbox(() => undefined);
for (let i = 0; i < 30_000; i++) inbox10k.append(`u${String(i % 10_000)}`, { data: t64, from: null }, undefined, RETENTION_DEFAULTS);
// A browser's WebSocket handshake (Chromium's headers, in its order).
const browserHead = Buffer.from(
  [
    'GET /?token=abc.def HTTP/1.1',
    'Host: 127.0.0.1:1234',
    'Connection: Upgrade',
    'Pragma: no-cache',
    'Cache-Control: no-cache',
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
    'Upgrade: websocket',
    'Origin: http://127.0.0.1:1234',
    'Sec-WebSocket-Version: 13',
    'Accept-Encoding: gzip, deflate, br',
    'Accept-Language: en-US,en;q=0.9',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
    '',
    '',
  ].join('\r\n'),
  'latin1',
);
if (typeof readRequestHead(browserHead) !== 'object') throw new Error('the browser head was not read');

// One read of 32 masked 64-byte text frames, as a busy sender's socket delivers them.
// Each parse gets a fresh copy: both parsers unmask in place.
const chunk32x64 = Buffer.concat(Array.from({ length: 32 }, () => maskedTextFrame(text(64))));
let parsedMessages = 0;
const countingSink: FrameSink = {
  onFrameMessage: () => {
    parsedMessages++;
  },
  onFramePing: () => undefined,
  onFramePong: () => undefined,
  onFrameClose: () => undefined,
  onFrameError: (code) => {
    throw new Error(`unexpected ${String(code)}`);
  },
};
const frameParser = new FrameParser(countingSink, 1 << 20);
// ws's Receiver as its server builds one (@types/ws does not declare it).
const ReceiverClass = (ws as unknown as { Receiver: new (options: object) => Writable }).Receiver;
const receiver = new ReceiverClass({ isServer: true, maxPayload: 1 << 20 });
receiver.on('message', () => {
  parsedMessages++;
});
const retainedEnvelope = { channel: 'uidpush:{u:hot}', before: '{"o":', after: '}' };
const latestKeys = ['k0', 'k1', 'k2', 'k3', 'k4'];
let latestAt = 0;

const cases: Case[] = [
  { name: 'encodeTextFrame 16 B', fn: () => encodeTextFrame(t16) },
  { name: 'encodeTextFrame 1 KiB', fn: () => encodeTextFrame(t1k) },
  { name: 'encodeTextFrame 16 KiB', fn: () => encodeTextFrame(t16k) },
  {
    name: 'PushFrames prepared × 10k recipients (seed + v1)',
    ops: 10_000,
    fn: () => {
      const frames = new PushFrames('broadcast payload of some 40 bytes....', null, 'broadcast', null, () => undefined);
      for (const r of recipients10k) r.writeFrame(frames.frameFor(r.codec, ''));
    },
  },
  { name: 'Hub.broadcast 64 B × 10k connections', ops: 10_000, fn: () => hub10k.broadcast(t64) },
  { name: 'Hub.sendToUid 64 B, 1 connection', fn: () => hub10k.sendToUid('u7', t64) },
  { name: 'encodeEnvelope push 1 KiB', fn: () => encodeEnvelope('node-1', { t: 'push', uid: 'alice', data: t1k, from: null }) },
  { name: 'decodeEnvelope push 1 KiB', fn: () => decodeEnvelope(envelope1k) },
  { name: 'encodePushes 100 uids, 64 B', ops: 100, fn: () => encodePushes('node-1', uids100, t64, null, 0) },
  { name: 'parseCommand seed 64 B', fn: () => parseCommand(seed64, 128) },
  {
    name: 'FrameParser: one read of 32 masked 64 B frames',
    ops: 32,
    fn: () => {
      frameParser.push(Buffer.from(chunk32x64));
    },
  },
  {
    name: 'ws Receiver: one read of 32 masked 64 B frames',
    ops: 32,
    fn: () => {
      receiver.write(Buffer.from(chunk32x64));
    },
  },
  { name: `readRequestHead: a browser handshake, ${String(browserHead.length)} B`, fn: () => readRequestHead(browserHead) },
  { name: 'parseClientFrame v1 send 256 B', fn: () => parseClientFrame(v1Send256, 32) },
  {
    name: 'MemoryInbox.append 64 B, hot uid among 10k',
    fn: () => inbox10k.append('hot', { data: t64, from: null }, retainedEnvelope, RETENTION_DEFAULTS),
  },
  {
    name: 'MemoryInbox.append 64 B, latest of 5 keys',
    fn: () =>
      inbox10k.append('hot-latest', { data: t64, from: null, key: latestKeys[latestAt++ % 5] }, retainedEnvelope, RETENTION_DEFAULTS),
  },
  {
    name: 'Registry bind/unbind 100k',
    ops: 200_000,
    fn: () => {
      for (let i = 0; i < 100_000; i++) registry.bind(conns100k[i] as object, uidNames100k[i] as string);
      for (let i = 0; i < 100_000; i++) registry.unbind(conns100k[i] as object);
    },
  },
];

/** Runs `fn` repeatedly for `ms`; returns ns per call. */
function sample(fn: () => unknown, ms: number): number {
  const budget = BigInt(ms) * 1_000_000n;
  const start = process.hrtime.bigint();
  let calls = 0;
  let elapsed = 0n;
  // Check the clock every `batch` calls, so hrtime does not dominate fast cases.
  let batch = 1;
  while (elapsed < budget) {
    for (let i = 0; i < batch; i++) fn();
    calls += batch;
    elapsed = process.hrtime.bigint() - start;
    if (elapsed < budget / 100n) batch *= 2;
  }
  return Number(elapsed) / calls;
}

const rows: { name: string; opsPerSec: number; nsPerOp: number }[] = [];
for (const c of cases) {
  if (values.filter !== undefined && !c.name.includes(values.filter)) continue;
  sample(c.fn, SAMPLE_MS); // warm-up: JIT and caches
  const samples = Array.from({ length: 5 }, () => sample(c.fn, SAMPLE_MS)).sort((a, b) => a - b);
  const nsPerCall = samples[2] ?? NaN;
  const nsPerOp = nsPerCall / (c.ops ?? 1);
  rows.push({ name: c.name, opsPerSec: 1e9 / nsPerOp, nsPerOp });
}

const fmt = (x: number, d: number): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`machine: ${describeMachine()}`);
console.log('');
console.log('| case | ops/s | ns/op |');
console.log('|---|---:|---:|');
for (const r of rows) console.log(`| ${r.name} | ${fmt(r.opsPerSec, 0)} | ${fmt(r.nsPerOp, 1)} |`);
console.log('');
console.log('(an op of a fan-out or batch case is one recipient, uid, frame or bind/unbind; median of 5 samples)');
// Both parsers report synchronously (the Receiver's write runs its loop at once), so a
// count of zero would mean the frame cases measured nothing.
if (rows.some((r) => r.name.includes('32 masked')) && parsedMessages === 0) throw new Error('the frame parsers parsed nothing');

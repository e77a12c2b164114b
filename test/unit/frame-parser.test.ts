import type { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { FrameParser, MAX_FRAGMENTS, type FrameError, type FrameSink } from '../../src/transport/ws/frame-parser.js';
import { closePayload } from '../helpers/frames.js';

/** What a parser reported, in order; buffers as hex so that events compare by value. */
type Event =
  | { type: 'message'; binary: boolean; data: string }
  | { type: 'ping' | 'pong'; data: string }
  | { type: 'close'; code: number; reason: string }
  | { type: 'error'; code: number; error: FrameError };

function collector(): { sink: FrameSink; events: Event[] } {
  const events: Event[] = [];
  const sink: FrameSink = {
    onFrameMessage: (data, binary) => events.push({ type: 'message', binary, data: data.toString('hex') }),
    onFramePing: (data) => events.push({ type: 'ping', data: data.toString('hex') }),
    onFramePong: (data) => events.push({ type: 'pong', data: data.toString('hex') }),
    onFrameClose: (code, reason) => events.push({ type: 'close', code, reason: reason.toString('hex') }),
    onFrameError: (code, error) => events.push({ type: 'error', code, error }),
  };
  return { sink, events };
}

/** Feeds `chunks` (copied: the parser unmasks in place) to a new parser; what it reported. */
function parse(chunks: readonly Buffer[], limit = 0): Event[] {
  const { sink, events } = collector();
  const parser = new FrameParser(sink, limit);
  for (const chunk of chunks) parser.push(Buffer.from(chunk));
  return events;
}

/** `stream` cut at `cuts` (positions, any order, out of range ones folded in). */
function split(stream: Buffer, cuts: readonly number[]): Buffer[] {
  if (stream.length === 0) return [stream];
  const at = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    chunks.push(stream.subarray(from, c));
    from = c;
  }
  chunks.push(stream.subarray(from));
  return chunks;
}

/** One frame as a client writes it, with every field free, invalid values included. */
interface FrameSpec {
  fin: boolean;
  /** RSV1-3, as the three bits 0x70 of the first byte. */
  rsv: number;
  opcode: number;
  masked: boolean;
  mask: number;
  payload: Uint8Array;
  /** The length encoding asked for: 7-bit, 16-bit or 64-bit (a larger one is used when needed). */
  encoding: 7 | 16 | 64;
}

function encode(f: FrameSpec): Buffer {
  const n = f.payload.length;
  const encoding = n < 126 ? f.encoding : n < 0x10000 && f.encoding !== 64 ? 16 : 64;
  const head = Buffer.alloc(encoding === 7 ? 2 : encoding === 16 ? 4 : 10);
  head[0] = (f.fin ? 0x80 : 0) | (f.rsv & 0x70) | (f.opcode & 0x0f);
  const maskBit = f.masked ? 0x80 : 0;
  if (encoding === 7) head[1] = maskBit | n;
  else if (encoding === 16) {
    head[1] = maskBit | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = maskBit | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  const payload = Buffer.from(f.payload);
  if (!f.masked) return Buffer.concat([head, payload]);
  const mask = Buffer.alloc(4);
  mask.writeUInt32BE(f.mask >>> 0, 0);
  for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([head, mask, payload]);
}

/** A valid masked frame of `opcode` with `payload`. */
function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), fin = true, mask = 0x1234abcd): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return encode({ fin, rsv: 0, opcode, masked: true, mask, payload: bytes, encoding: 7 });
}

const hex = (s: string | Buffer): string => Buffer.from(s).toString('hex');

describe('FrameParser: the frames of RFC 6455 a server accepts', () => {
  it('reports a text and a binary message, unmasked, in all three length encodings', () => {
    const long = Buffer.alloc(300, 0x61);
    const longer = Buffer.alloc(70_000, 0x62);
    const events = parse([
      frame(1, 'héllo'),
      frame(2, Buffer.from([0, 1, 2])),
      encode({ fin: true, rsv: 0, opcode: 1, masked: true, mask: 7, payload: long, encoding: 16 }),
      encode({ fin: true, rsv: 0, opcode: 2, masked: true, mask: -1, payload: longer, encoding: 64 }),
      // A 16-bit length for 3 bytes: not minimal, which ws accepts too.
      encode({ fin: true, rsv: 0, opcode: 1, masked: true, mask: 9, payload: Buffer.from('abc'), encoding: 16 }),
    ]);
    expect(events).toEqual([
      { type: 'message', binary: false, data: hex('héllo') },
      { type: 'message', binary: true, data: '000102' },
      { type: 'message', binary: false, data: long.toString('hex') },
      { type: 'message', binary: true, data: longer.toString('hex') },
      { type: 'message', binary: false, data: hex('abc') },
    ]);
  });

  it('joins fragments, with control frames between them, and UTF-8 split across fragments', () => {
    const text = Buffer.from('€uro');
    const events = parse([
      frame(1, text.subarray(0, 1), false),
      frame(9, 'p1'),
      frame(0, text.subarray(1, 2), false),
      frame(0, Buffer.alloc(0), false),
      frame(10, 'p2'),
      frame(0, text.subarray(2), true),
    ]);
    expect(events).toEqual([
      { type: 'ping', data: hex('p1') },
      { type: 'pong', data: hex('p2') },
      { type: 'message', binary: false, data: text.toString('hex') },
    ]);
  });

  it('reports empty messages, pings and pongs', () => {
    expect(parse([frame(1), frame(2), frame(9), frame(10), frame(1, '', false), frame(0)])).toEqual([
      { type: 'message', binary: false, data: '' },
      { type: 'message', binary: true, data: '' },
      { type: 'ping', data: '' },
      { type: 'pong', data: '' },
      { type: 'message', binary: false, data: '' },
    ]);
  });

  it('reports a close frame with its code and reason, 1005 for none, and nothing after it', () => {
    expect(parse([frame(8, closePayload(4000, 'bye')), frame(1, 'after')])).toEqual([{ type: 'close', code: 4000, reason: hex('bye') }]);
    expect(parse([Buffer.concat([frame(8), frame(1, 'after')])])).toEqual([{ type: 'close', code: 1005, reason: '' }]);
  });

  it('parses a stream fed one byte at a time', () => {
    const stream = Buffer.concat([frame(1, 'a'.repeat(200), false), frame(9, 'x'), frame(0, 'b'), frame(8, closePayload(1000))]);
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(parse(bytes)).toEqual([
      { type: 'ping', data: hex('x') },
      { type: 'message', binary: false, data: hex('a'.repeat(200) + 'b') },
      { type: 'close', code: 1000, reason: '' },
    ]);
  });
});

describe('FrameParser: what it refuses, with ws’s close codes', () => {
  const refused = (chunks: Buffer[], limit = 0): Event | undefined => {
    const events = parse(chunks, limit);
    const last = events.at(-1);
    // The error is the last event, and the only one.
    expect(events.filter((e) => e.type === 'error').length).toBeLessThanOrEqual(1);
    return last?.type === 'error' ? last : undefined;
  };

  it('an unmasked client frame: 1002', () => {
    expect(refused([encode({ fin: true, rsv: 0, opcode: 1, masked: false, mask: 0, payload: Buffer.from('hi'), encoding: 7 })])).toEqual({
      type: 'error',
      code: 1002,
      error: 'expected_mask',
    });
  });

  it.each([0x40, 0x20, 0x10])('RSV bits set (0x%s), no extension being negotiated: 1002', (rsv) => {
    expect(refused([encode({ fin: true, rsv, opcode: 1, masked: true, mask: 1, payload: Buffer.from('hi'), encoding: 7 })])).toEqual({
      type: 'error',
      code: 1002,
      error: 'unexpected_rsv',
    });
  });

  it.each([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])('reserved opcode %s: 1002', (opcode) => {
    expect(refused([frame(opcode, 'x')])).toEqual({ type: 'error', code: 1002, error: 'invalid_opcode' });
  });

  it('a fragmented control frame, or one over 125 bytes: 1002', () => {
    expect(refused([frame(9, 'x', false)])).toEqual({ type: 'error', code: 1002, error: 'expected_fin' });
    expect(refused([frame(9, Buffer.alloc(126))])).toEqual({ type: 'error', code: 1002, error: 'invalid_control_length' });
    expect(refused([encode({ fin: true, rsv: 0, opcode: 10, masked: true, mask: 0, payload: Buffer.alloc(10), encoding: 16 })])).toEqual({
      type: 'error',
      code: 1002,
      error: 'invalid_control_length',
    });
  });

  it('a continuation with nothing to continue, and a new message inside a fragmented one: 1002', () => {
    expect(refused([frame(0, 'x')])).toEqual({ type: 'error', code: 1002, error: 'invalid_opcode' });
    expect(refused([frame(1, 'a', false), frame(2, 'b')])).toEqual({ type: 'error', code: 1002, error: 'invalid_opcode' });
    expect(refused([frame(2, 'a', false), frame(1, 'b', false)])).toEqual({ type: 'error', code: 1002, error: 'invalid_opcode' });
  });

  it('a 64-bit length over 2^53 - 1: 1009, whatever the limit', () => {
    const head = Buffer.from([0x82, 0xff, 0, 0x20, 0, 0, 0, 0, 0, 0]);
    expect(refused([head])).toEqual({ type: 'error', code: 1009, error: 'unsupported_length' });
    const top = Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1]);
    expect(refused([top])).toEqual({ type: 'error', code: 1009, error: 'unsupported_length' });
  });

  it('a message over the limit, at its header, and for the running total of its fragments: 1009', () => {
    expect(refused([frame(1, 'a'.repeat(11))], 10)).toEqual({ type: 'error', code: 1009, error: 'too_large' });
    expect(refused([frame(1, 'a'.repeat(6), false), frame(0, 'a'.repeat(5))], 10)).toEqual({
      type: 'error',
      code: 1009,
      error: 'too_large',
    });
    // The header alone, its payload never sent: refused all the same.
    const header = Buffer.from([0x81, 0xfe, 0x10, 0x00]);
    expect(refused([header], 100)).toEqual({ type: 'error', code: 1009, error: 'too_large' });
  });

  it('invalid UTF-8 in a text message, but not in a binary one: 1007', () => {
    expect(refused([frame(1, Buffer.from([0xff, 0xfe]))])).toEqual({ type: 'error', code: 1007, error: 'invalid_utf8' });
    // A character cut by the end of the message.
    expect(refused([frame(1, Buffer.from('€').subarray(0, 2))])).toEqual({ type: 'error', code: 1007, error: 'invalid_utf8' });
    // An encoded surrogate and an overlong slash.
    expect(refused([frame(1, Buffer.from([0xed, 0xa0, 0x80]))])).toEqual({ type: 'error', code: 1007, error: 'invalid_utf8' });
    expect(refused([frame(1, Buffer.from([0xc0, 0xaf]))])).toEqual({ type: 'error', code: 1007, error: 'invalid_utf8' });
    expect(parse([frame(2, Buffer.from([0xff, 0xfe]))])).toEqual([{ type: 'message', binary: true, data: 'fffe' }]);
  });

  it('a close frame of 1 byte, with a code no close frame may carry, or a reason that is not UTF-8', () => {
    expect(refused([frame(8, Buffer.from([3]))])).toEqual({ type: 'error', code: 1002, error: 'invalid_control_length' });
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]) {
      expect(refused([frame(8, closePayload(code))])).toEqual({ type: 'error', code: 1002, error: 'invalid_close_code' });
    }
    for (const code of [1000, 1001, 1003, 1007, 1014, 3000, 4999]) {
      expect(parse([frame(8, closePayload(code))])).toEqual([{ type: 'close', code, reason: '' }]);
    }
    const bad = Buffer.concat([closePayload(1000), Buffer.from([0xff])]);
    expect(refused([frame(8, bad)])).toEqual({ type: 'error', code: 1007, error: 'invalid_utf8' });
  });

  it('a message in more than 16,384 fragments: 1008', () => {
    const parts = [frame(2, 'a', false)];
    for (let i = 1; i < MAX_FRAGMENTS; i++) parts.push(frame(0, 'a', false));
    expect(parse([Buffer.concat(parts)])).toEqual([]);
    expect(refused([Buffer.concat([...parts, frame(0, 'a')])])).toEqual({ type: 'error', code: 1008, error: 'too_many_fragments' });
    // 16,384 frames in all, the last one final: accepted.
    expect(parse([Buffer.concat([...parts.slice(0, -1), frame(0, 'a')])])).toEqual([
      { type: 'message', binary: true, data: hex('a'.repeat(MAX_FRAGMENTS)) },
    ]);
  });

  it('reports nothing after an error, and refuses as soon as the first two bytes tell', () => {
    expect(parse([Buffer.concat([frame(3), frame(1, 'after')])])).toEqual([{ type: 'error', code: 1002, error: 'invalid_opcode' }]);
    expect(parse([Buffer.from([0x81, 0x05])])).toEqual([{ type: 'error', code: 1002, error: 'expected_mask' }]);
  });
});

/** A message as the model sees it, and the frames it is sent in with control frames between. */
interface Sent {
  frames: Buffer[];
  expected: Event[];
}

const maskArb = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const encodingArb = fc.constantFrom<7 | 16 | 64>(7, 16, 64);
const controlArb = fc.record({
  opcode: fc.constantFrom(9, 10),
  payload: fc.uint8Array({ maxLength: 125 }),
  mask: maskArb,
  encoding: fc.constant<7>(7),
});
/** A data message: text (valid UTF-8) or binary, cut into fragments, maybe with control frames between them. */
const messageArb = fc
  .record({
    binary: fc.boolean(),
    text: fc.string({ unit: 'binary', maxLength: 300 }),
    bytes: fc.uint8Array({ maxLength: 300 }),
    big: fc.boolean(),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
    masks: fc.array(maskArb, { minLength: 6, maxLength: 6 }),
    encodings: fc.array(encodingArb, { minLength: 6, maxLength: 6 }),
    controls: fc.array(fc.option(controlArb, { nil: undefined }), { minLength: 5, maxLength: 5 }),
  })
  .map(({ binary, text, bytes, big, cuts, masks, encodings, controls }): Sent => {
    let payload = binary ? Buffer.from(bytes) : Buffer.from(text);
    // Now and then one past 64 KiB, for the 64-bit length on a real size.
    if (big && cuts.length === 4) payload = Buffer.concat([payload, Buffer.alloc(70_000, 0x41)]);
    const pieces = split(payload, cuts);
    const frames: Buffer[] = [];
    const expected: Event[] = [];
    pieces.forEach((piece, i) => {
      const last = i === pieces.length - 1;
      frames.push(
        encode({
          fin: last,
          rsv: 0,
          opcode: i === 0 ? (binary ? 2 : 1) : 0,
          masked: true,
          mask: masks[i] ?? 0,
          payload: piece,
          encoding: encodings[i] ?? 7,
        }),
      );
      const control = last ? undefined : controls[i];
      if (control !== undefined) {
        frames.push(encode({ ...control, fin: true, rsv: 0, masked: true }));
        expected.push({ type: control.opcode === 9 ? 'ping' : 'pong', data: Buffer.from(control.payload).toString('hex') });
      }
    });
    expected.push({ type: 'message', binary, data: payload.toString('hex') });
    return { frames, expected };
  });
const closeArb = fc.option(
  fc.record({ code: fc.constantFrom(1000, 1001, 1011, 3000, 4000, 4999), reason: fc.string({ maxLength: 40 }), mask: maskArb }),
  { nil: undefined },
);

describe('FrameParser: properties', () => {
  it('gives the messages of the stream, whole or cut into chunks at any points', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 6 }), closeArb, fc.array(fc.nat(), { maxLength: 12 }), (messages, close, cuts) => {
        const frames = messages.flatMap((m) => m.frames);
        const expected = messages.flatMap((m) => m.expected);
        if (close !== undefined) {
          const reason = Buffer.from(close.reason);
          if (reason.length <= 123) {
            frames.push(frame(8, Buffer.concat([closePayload(close.code), reason]), true, close.mask));
            expected.push({ type: 'close', code: close.code, reason: reason.toString('hex') });
          }
        }
        const stream = Buffer.concat(frames);
        expect(parse([stream])).toEqual(expected);
        expect(parse(split(stream, cuts))).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it('never throws on random bytes, and reports at most one error, 1002, 1007 or 1009, last', () => {
    const prefix = fc.option(messageArb, { nil: undefined });
    fc.assert(
      fc.property(
        prefix,
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.nat({ max: 400 }),
        (start, noise, cuts, limit) => {
          const stream = Buffer.concat([...(start?.frames ?? []), Buffer.from(noise)]);
          const events = parse(split(stream, cuts), limit);
          const ends = events.filter((e) => e.type === 'error' || e.type === 'close');
          expect(ends.length).toBeLessThanOrEqual(1);
          if (ends.length === 1) expect(events.at(-1)).toBe(ends[0]);
          for (const e of events) if (e.type === 'error') expect([1002, 1007, 1009]).toContain(e.code);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

/** ws's Receiver, as its server builds one (@types/ws does not declare it). */
const ReceiverClass = (ws as unknown as { Receiver: new (options: object) => Writable }).Receiver;

/** ws's error codes, as the parser's. */
const WS_ERRORS: Record<string, FrameError> = {
  WS_ERR_EXPECTED_MASK: 'expected_mask',
  WS_ERR_UNEXPECTED_RSV_1: 'unexpected_rsv',
  WS_ERR_UNEXPECTED_RSV_2_3: 'unexpected_rsv',
  WS_ERR_INVALID_OPCODE: 'invalid_opcode',
  WS_ERR_EXPECTED_FIN: 'expected_fin',
  WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH: 'invalid_control_length',
  WS_ERR_INVALID_CLOSE_CODE: 'invalid_close_code',
  WS_ERR_INVALID_UTF8: 'invalid_utf8',
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 'too_many_fragments',
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 'unsupported_length',
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 'too_large',
};

/** What ws's Receiver reports for the same chunks; its error comes on the next tick. */
async function parseWithWs(chunks: readonly Buffer[], maxPayload: number): Promise<Event[]> {
  const receiver = new ReceiverClass({ isServer: true, maxPayload, maxFragments: MAX_FRAGMENTS });
  const events: Event[] = [];
  // An object: TypeScript does not see the listeners set it.
  const state = { ended: false };
  receiver.on('message', (data: Buffer, binary: boolean) => events.push({ type: 'message', binary, data: data.toString('hex') }));
  receiver.on('ping', (data: Buffer) => events.push({ type: 'ping', data: data.toString('hex') }));
  receiver.on('pong', (data: Buffer) => events.push({ type: 'pong', data: data.toString('hex') }));
  receiver.on('conclude', (code: number, reason: Buffer) => {
    state.ended = true;
    events.push({ type: 'close', code, reason: reason.toString('hex') });
  });
  const errored = new Promise<void>((resolve) => {
    receiver.on('error', (err: Error & { code?: string }) => {
      const symbol = Object.getOwnPropertySymbols(err).find((s) => s.description === 'status-code');
      const code = symbol === undefined ? 0 : ((err as unknown as Record<symbol, number>)[symbol] ?? 0);
      if (!state.ended) events.push({ type: 'error', code, error: WS_ERRORS[err.code ?? ''] ?? (err.code as FrameError) });
      state.ended = true;
      resolve();
    });
  });
  for (const chunk of chunks) {
    if (state.ended || receiver.destroyed || receiver.writableEnded) break;
    receiver.write(Buffer.from(chunk));
  }
  await Promise.race([errored, new Promise((resolve) => setImmediate(resolve))]);
  return events;
}

/** A frame with every field drawn, mostly valid: what a client, a broken one now and then, sends. */
const looseFrameArb = fc
  .record({
    kind: fc.constantFrom('text', 'binary', 'continue', 'ping', 'pong', 'close', 'other'),
    fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    rsv: fc.oneof({ weight: 15, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(0x10, 0x20, 0x40) }),
    masked: fc.oneof({ weight: 20, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    mask: maskArb,
    text: fc.string({ unit: 'binary', maxLength: 60 }),
    bytes: fc.uint8Array({ maxLength: 140 }),
    closeCode: fc.oneof(fc.constantFrom(1000, 1001, 1005, 1006, 3000, 4999, 5000), fc.nat({ max: 65535 })),
    encoding: encodingArb,
    opcode: fc.integer({ min: 3, max: 15 }),
  })
  .map((r): Buffer => {
    const opcode = { text: 1, binary: 2, continue: 0, ping: 9, pong: 10, close: 8, other: r.opcode }[r.kind];
    let payload: Uint8Array = r.kind === 'text' || r.kind === 'continue' ? Buffer.from(r.text) : r.bytes;
    if (r.kind === 'close')
      payload =
        r.bytes.length % 5 === 0 ? new Uint8Array(0) : Buffer.concat([closePayload(r.closeCode), Buffer.from(r.text).subarray(0, 100)]);
    return encode({ fin: r.fin, rsv: r.rsv, opcode, masked: r.masked, mask: r.mask, payload, encoding: r.encoding });
  });

describe('FrameParser against ws’s own Receiver', () => {
  it('gives the same messages and, on error, the same close code and reason as ws', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(looseFrameArb, { maxLength: 8 }),
        fc.option(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { nil: undefined }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.constantFrom(0, 50, 200),
        async (frames, flip, truncate, cuts, limit) => {
          let stream = Buffer.concat(frames);
          if (flip !== undefined && stream.length > 0) {
            const at = flip.at % stream.length;
            stream[at] = (stream[at] as number) ^ flip.xor;
          }
          if (truncate !== undefined && stream.length > 0) stream = stream.subarray(0, truncate % stream.length);
          const chunks = split(stream, cuts);
          expect(parse(chunks, limit)).toEqual(await parseWithWs(chunks, limit));
        },
      ),
      { numRuns: 600 },
    );
  });
});

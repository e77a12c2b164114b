import { describe, expect, it } from 'vitest';
import { FrameParser, type FrameError, type FrameSink } from '../../src/transport/ws/frame-parser.js';
import { defaultIdleTimeout, resolveServerOptions } from '../../src/server/options.js';

/** What a parser reported, in order. */
type Event = { message: number } | { error: FrameError; code: number };

function parser(limit: number): { p: FrameParser; events: Event[] } {
  const events: Event[] = [];
  const sink: FrameSink = {
    onFrameMessage: (data) => events.push({ message: data.length }),
    onFramePing: () => undefined,
    onFramePong: () => undefined,
    onFrameClose: () => undefined,
    onFrameError: (code, error) => events.push({ error, code }),
  };
  return { p: new FrameParser(sink, limit), events };
}

/** A masked client frame; `announce` overrides the length in its header (for a header alone). */
function frame(opcode: number, fin: boolean, payload: Buffer, announce = payload.length): Buffer {
  const head = announce < 126 ? Buffer.from([0, 0x80 | announce]) : announce < 0x10000 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (announce >= 126 && announce < 0x10000) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(announce, 2);
  } else if (announce >= 0x10000) {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(announce), 2);
  }
  return Buffer.concat([head, Buffer.from([0, 0, 0, 0]), payload]);
}

describe('the per-connection receive limit', () => {
  it('accepts a message of exactly the limit and refuses one byte more with 1009 too_large', () => {
    const { p, events } = parser(100);
    p.push(frame(1, true, Buffer.alloc(100, 0x61)));
    p.push(frame(1, true, Buffer.alloc(101, 0x62)));
    expect(events).toEqual([{ message: 100 }, { error: 'too_large', code: 1009 }]);
  });

  it('refuses at the header, before any of the payload has arrived', () => {
    const { p, events } = parser(16 * 1024);
    const header = frame(1, true, Buffer.alloc(0), 1024 * 1024);
    p.push(header);
    expect(events).toEqual([{ error: 'too_large', code: 1009 }]);
  });

  it('counts the fragments of a message together, and refuses at the fragment that passes the limit', () => {
    const { p, events } = parser(100);
    p.push(frame(1, false, Buffer.alloc(60, 0x61)));
    expect(events).toEqual([]);
    p.push(frame(0, true, Buffer.alloc(0), 41));
    expect(events).toEqual([{ error: 'too_large', code: 1009 }]);
  });

  it('does not count control frames, which have their own 125-byte cap', () => {
    const { p, events } = parser(10);
    p.push(frame(9, true, Buffer.alloc(100)));
    p.push(frame(1, true, Buffer.alloc(10, 0x61)));
    expect(events).toEqual([{ message: 10 }]);
  });

  it('takes a new limit at any time, from the next frame header on: lower before login, higher after', () => {
    const { p, events } = parser(100);
    p.push(frame(1, true, Buffer.alloc(100, 0x61)));
    p.limit = 2 * 1024 * 1024;
    p.push(frame(1, true, Buffer.alloc(1024 * 1024 + 1, 0x61)));
    p.limit = 10;
    p.push(frame(1, true, Buffer.alloc(10, 0x61)));
    p.push(frame(1, true, Buffer.alloc(11, 0x61)));
    expect(events).toEqual([{ message: 100 }, { message: 1024 * 1024 + 1 }, { message: 10 }, { error: 'too_large', code: 1009 }]);
  });

  it('applies a limit changed while a header is split across chunks to that header', () => {
    const { p, events } = parser(1000);
    const whole = frame(1, true, Buffer.alloc(500, 0x61));
    p.push(whole.subarray(0, 1));
    p.limit = 100;
    p.push(whole.subarray(1));
    expect(events).toEqual([{ error: 'too_large', code: 1009 }]);
  });
});

describe('idleTimeout default', () => {
  it('is derived from heartbeatInterval when unset: 60 s for the default 25 s', () => {
    expect(resolveServerOptions({}).idleTimeout).toBe(60_000);
    expect(resolveServerOptions({ heartbeatInterval: 1000 }).idleTimeout).toBe(12_000);
    expect(defaultIdleTimeout(5000)).toBe(20_000);
  });

  it('keeps an explicit value', () => {
    expect(resolveServerOptions({ heartbeatInterval: 1000, idleTimeout: 3000 }).idleTimeout).toBe(3000);
  });
});

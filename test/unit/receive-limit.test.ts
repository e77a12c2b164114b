import { describe, expect, it } from 'vitest';
import { FrameParser, type FrameError, type FrameSink } from '../../src/transport/ws/frame-parser.js';
import { defaultIdleTimeout, resolveServerOptions } from '../../src/server/options.js';
import { clientFrame } from '../helpers/frames.js';

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

describe('the per-connection receive limit', () => {
  it('accepts a message of exactly the limit and refuses one byte more with 1009 too_large', () => {
    const { p, events } = parser(100);
    p.push(clientFrame(1, Buffer.alloc(100, 0x61)));
    p.push(clientFrame(1, Buffer.alloc(101, 0x62)));
    expect(events).toEqual([{ message: 100 }, { error: 'too_large', code: 1009 }]);
  });

  it('refuses at the header, before any of the payload has arrived', () => {
    const { p, events } = parser(16 * 1024);
    const header = clientFrame(1, Buffer.alloc(0), { announce: 1024 * 1024 });
    p.push(header);
    expect(events).toEqual([{ error: 'too_large', code: 1009 }]);
  });

  it('counts the fragments of a message together, and refuses at the fragment that passes the limit', () => {
    const { p, events } = parser(100);
    p.push(clientFrame(1, Buffer.alloc(60, 0x61), { fin: false }));
    expect(events).toEqual([]);
    p.push(clientFrame(0, Buffer.alloc(0), { announce: 41 }));
    expect(events).toEqual([{ error: 'too_large', code: 1009 }]);
  });

  it('does not count control frames, which have their own 125-byte cap', () => {
    const { p, events } = parser(10);
    p.push(clientFrame(9, Buffer.alloc(100)));
    p.push(clientFrame(1, Buffer.alloc(10, 0x61)));
    expect(events).toEqual([{ message: 10 }]);
  });

  it('takes a new limit at any time, from the next frame header on: lower before login, higher after', () => {
    const { p, events } = parser(100);
    p.push(clientFrame(1, Buffer.alloc(100, 0x61)));
    p.limit = 2 * 1024 * 1024;
    p.push(clientFrame(1, Buffer.alloc(1024 * 1024 + 1, 0x61)));
    p.limit = 10;
    p.push(clientFrame(1, Buffer.alloc(10, 0x61)));
    p.push(clientFrame(1, Buffer.alloc(11, 0x61)));
    expect(events).toEqual([{ message: 100 }, { message: 1024 * 1024 + 1 }, { message: 10 }, { error: 'too_large', code: 1009 }]);
  });

  it('applies a limit changed while a header is split across chunks to that header', () => {
    const { p, events } = parser(1000);
    const whole = clientFrame(1, Buffer.alloc(500, 0x61));
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

import { describe, expect, it } from 'vitest';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { encodeTextFrame } from '../../src/delivery/ws-frame.js';

// ws exports its frame parser, but @types/ws does not describe it.
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable & EventEmitter;
};

/** Decodes a frame with ws's own receiver, so the encoder is checked against ws. */
function decode(frame: Buffer): Promise<{ text: string; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false, maxPayload: 1 << 24 });
    receiver.on('message', (data: Buffer, isBinary: boolean) => {
      resolve({ text: data.toString(), isBinary });
    });
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

describe('encodeTextFrame', () => {
  it.each([0, 1, 125, 126, 127, 65535, 65536, 70000, 1 << 20])('builds a frame ws decodes, for %i bytes', async (n) => {
    const text = 'a'.repeat(n);
    expect(await decode(encodeTextFrame(text))).toEqual({ text, isBinary: false });
    expect(await decode(encodeTextFrame(Buffer.from(text)))).toEqual({ text, isBinary: false });
  });

  it('counts multi-byte characters in bytes', async () => {
    const text = 'é🌍'.repeat(50);
    const frame = encodeTextFrame(text);
    expect(frame.length).toBe(4 + Buffer.byteLength(text));
    expect((await decode(frame)).text).toBe(text);
  });

  it.each([
    [0, [0x81, 0]],
    [125, [0x81, 125]],
    [126, [0x81, 126, 0, 126]],
    [65535, [0x81, 126, 0xff, 0xff]],
    [65536, [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]],
  ])('uses the shortest length form for %i bytes (header %j)', (n, header) => {
    const frame = encodeTextFrame('a'.repeat(n));
    expect([...frame.subarray(0, header.length)]).toEqual(header);
    expect(frame.length).toBe(header.length + n);
  });

  it('is one contiguous buffer: FIN, text opcode, unmasked', () => {
    const frame = encodeTextFrame('hi');
    expect([...frame]).toEqual([0x81, 0x02, 0x68, 0x69]);
  });
});

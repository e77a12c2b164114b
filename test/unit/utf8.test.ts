import { describe, expect, it } from 'vitest';
import { utf8ByteLength } from '../../src/core/utf8.js';

// node's own count is the reference: the limits that use this one must agree with what
// Buffer.byteLength (and so the wire) says, byte for byte.
const cases: [string, string][] = [
  ['empty', ''],
  ['ASCII', 'login success, your uid is alice'],
  ['two-byte (Latin-1 and beyond)', 'zoë, ñ, ß, Ω'],
  ['three-byte (CJK, U+FFFD, U+FFFF)', '日本\uFFFD\uFFFF'],
  ['four-byte (a surrogate pair)', '\u{1F600}\u{10FFFF}'],
  ['a lone high surrogate at the end', 'x\uD83D'],
  ['a lone high surrogate before ASCII', '\uD83Dx'],
  ['a lone low surrogate', '\uDE00x'],
  ['two high surrogates, then a low one', '\uD83D\uD83D\uDE00'],
  ['boundaries: U+007F, U+0080, U+07FF, U+0800', '\u007F\u0080\u07FF\u0800'],
];

describe('utf8ByteLength', () => {
  for (const [name, text] of cases) {
    it(`counts what Buffer.byteLength counts: ${name}`, () => {
      expect(utf8ByteLength(text)).toBe(Buffer.byteLength(text, 'utf8'));
    });
  }

  it('agrees with Buffer.byteLength on every BMP code unit and a sample of pairs', () => {
    for (let c = 0; c <= 0xffff; c++) {
      const s = `a${String.fromCharCode(c)}b`;
      if (utf8ByteLength(s) !== Buffer.byteLength(s)) throw new Error(`differs at U+${c.toString(16)}`);
    }
    for (let cp = 0x10000; cp <= 0x10ffff; cp += 0x1f3) {
      const s = String.fromCodePoint(cp);
      expect(utf8ByteLength(s)).toBe(4);
    }
  });
});

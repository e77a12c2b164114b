import { describe, expect, it } from 'vitest';
import { exceedsJsonDepth } from '../../src/core/json-depth.js';

/** Both forms the server scans: the string fastify hands over and the bytes ws does. */
const exceeds = (text: string, limit: number): boolean => {
  const asString = exceedsJsonDepth(text, limit);
  const asBytes = exceedsJsonDepth(Buffer.from(text), limit);
  expect(asBytes).toBe(asString);
  return asString;
};

const nested = (levels: number): string => '['.repeat(levels) + ']'.repeat(levels);

/** The true depth of a parsed value, walked with an explicit stack. */
function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 0]];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, d] = top;
    if (typeof v !== 'object' || v === null) continue;
    deepest = Math.max(deepest, d + 1);
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return deepest;
}

describe('exceedsJsonDepth', () => {
  it('counts scalars as depth 0 and each array or object as one level', () => {
    expect(exceeds('"x"', 0)).toBe(false);
    expect(exceeds('42', 0)).toBe(false);
    expect(exceeds('[]', 0)).toBe(true);
    expect(exceeds('[]', 1)).toBe(false);
    expect(exceeds('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(exceeds('{"a":[{"b":1}]}', 2)).toBe(true);
  });

  it('passes nesting exactly at the limit and refuses one level over it', () => {
    expect(exceeds(nested(32), 32)).toBe(false);
    expect(exceeds(nested(33), 32)).toBe(true);
    expect(exceeds(`{"type":"broadcast","data":${nested(1400)}}`, 33)).toBe(true);
  });

  it('measures the deepest branch, not the number of brackets', () => {
    const siblings = `[${Array.from({ length: 1000 }, () => nested(5)).join(',')}]`;
    expect(exceeds(siblings, 6)).toBe(false);
    expect(exceeds(siblings, 5)).toBe(true);
  });

  it('ignores brackets inside strings, escaped quotes and backslashes included', () => {
    expect(exceeds('"[[[[{{{{"', 0)).toBe(false);
    expect(exceeds('["a\\"[[[[", "]]]]"]', 1)).toBe(false);
    expect(exceeds('["\\\\", [[1]]]', 2)).toBe(true); // the backslash is escaped; the quote ends the string
    expect(exceeds('["\\\\\\"[[[", 1]', 1)).toBe(false); // \\ then \" : still inside the string
    expect(exceeds('{"[[[[":"{{{{","k":{"v":"]]]]"}}', 2)).toBe(false);
  });

  it('finds the end of long strings with escapes at any offset', () => {
    for (let pad = 0; pad < 80; pad++) {
      // Raw characters; JSON.stringify escapes them, so the text has \" and \\ at every offset.
      for (const special of ['"', '\\', '\\"', '\\\\"']) {
        const json = JSON.stringify([`${'x'.repeat(pad)}${special}[[[[${'y'.repeat(pad)}`, [[1]]]);
        expect(exceeds(json, 3), json).toBe(false);
        expect(exceeds(json, 2), json).toBe(true);
      }
    }
  });

  it('is not fooled by brackets in multi-byte text', () => {
    expect(exceeds('["é[ü{中文]", {"😀":["["]}]', 3)).toBe(false);
    expect(exceeds('["é[ü{中文]", {"😀":["["]}]', 2)).toBe(true);
  });

  it('scans a huge flat array without counting it as deep', () => {
    const flat = `[${'1,'.repeat(500_000)}1]`;
    expect(exceeds(flat, 1)).toBe(false);
    const strings = `[${'"[{\\"",'.repeat(200_000)}"x"]`;
    expect(exceeds(strings, 1)).toBe(false);
  });

  it('stops early on a deep prefix and copes with text that is not JSON', () => {
    expect(exceeds(`${nested(40)}garbage"`, 32)).toBe(true);
    expect(exceeds('"unterminated [[[[[', 0)).toBe(false);
    // Unbalanced text is no valid JSON: the parser that follows refuses it.
    expect(exceeds(']]]]]][', 0)).toBe(false);
    expect(exceeds('', 0)).toBe(false);
  });

  it('agrees with the depth of the parsed value on generated JSON', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pieces = ['[', ']', '{', '}', '"', '\\', 'a', 'é', ':'];
    const text = (): string => Array.from({ length: random(6) }, () => pieces[random(pieces.length)]).join('');
    const value = (levels: number): unknown => {
      if (levels === 0 || random(4) === 0) return random(2) === 0 ? text() : random(100);
      if (random(2) === 0) return Array.from({ length: random(4) }, () => value(levels - 1));
      return Object.fromEntries(Array.from({ length: random(4) }, () => [text(), value(levels - 1)]));
    };
    for (let i = 0; i < 500; i++) {
      const json = JSON.stringify(value(random(12)));
      const depth = depthOf(JSON.parse(json));
      expect(exceeds(json, depth), json).toBe(false);
      if (depth > 0) expect(exceeds(json, depth - 1), json).toBe(true);
    }
  });
});

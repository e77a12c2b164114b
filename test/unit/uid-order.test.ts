import { describe, expect, it } from 'vitest';
import { compareUids, cursorAfter, UidIndex, uidOfCursor } from '../../src/core/uid-order.js';
import { UidpushError } from '../../src/core/errors.js';

// Characters from every range whose UTF-16 and UTF-8 orders could disagree.
const ALPHABET = [
  'a',
  'z',
  '\u00e9',
  '\u07ff',
  '\u0800',
  '\u65e5',
  '\ud7ff',
  '\ue000',
  '\uffef',
  '\ufffd',
  '\u{10000}',
  '\u{1f600}',
  '\u{10ffff}',
];

/** A deterministic generator (mulberry32): the same strings on every run. */
function random(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomUid(next: () => number): string {
  let uid = '';
  const length = 1 + Math.floor(next() * 4);
  for (let i = 0; i < length; i++) uid += ALPHABET[Math.floor(next() * ALPHABET.length)] ?? 'a';
  return uid;
}

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('uid order', () => {
  it('orders uids as Redis does: by the bytes of their UTF-8', () => {
    const next = random(1);
    for (let i = 0; i < 5000; i++) {
      const a = randomUid(next);
      const b = randomUid(next);
      expect(Math.sign(compareUids(a, b)), `${a} vs ${b}`).toBe(Math.sign(byBytes(a, b)));
    }
    // The case JavaScript's own < gets wrong: U+FFFD sorts before an emoji in UTF-8,
    // after it in UTF-16.
    expect(compareUids('\ufffd', '\u{1f600}')).toBeLessThan(0);
  });

  it('pages every uid online for the whole scan exactly once, in order, while others come and go', () => {
    const next = random(2);
    const index = new UidIndex();
    const stable = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const uid = `${randomUid(next)}-${String(i)}`;
      stable.add(uid);
      index.add(uid);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 1000; pages++) {
      const page = index.page(cursor, 7);
      expect(page.uids.length).toBeLessThanOrEqual(7);
      seen.push(...page.uids);
      // Churn between pages: uids that come and go (they may or may not be listed).
      const churn = `${randomUid(next)}-churn-${String(pages)}`;
      index.add(churn);
      if (pages % 2 === 0) index.delete(churn);
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    expect(cursor).toBeNull();
    const listedStable = seen.filter((uid) => stable.has(uid));
    expect(listedStable).toEqual([...stable].sort(byBytes));
    expect(new Set(seen).size).toBe(seen.length);
    for (let i = 1; i < seen.length; i++) expect(byBytes(seen[i - 1] ?? '', seen[i] ?? '')).toBeLessThan(0);
  });

  it('ends with a null cursor, and forgets deleted uids', () => {
    const index = new UidIndex();
    expect(index.page(null, 10)).toEqual({ uids: [], nextCursor: null });
    index.add('b');
    index.add('a');
    index.add('c');
    index.delete('b');
    const first = index.page(null, 1);
    expect(first.uids).toEqual(['a']);
    expect(index.page(first.nextCursor, 5)).toEqual({ uids: ['c'], nextCursor: null });
  });

  it('reads back the uid of every cursor it made, a leading U+FEFF included', () => {
    const next = random(3);
    for (let i = 0; i < 500; i++) {
      const uid = randomUid(next);
      expect(uidOfCursor(cursorAfter(uid))).toBe(uid);
    }
    expect(uidOfCursor(cursorAfter('\ufeffbom'))).toBe('\ufeffbom');
  });

  it('writes the cursor format of every earlier release: unpadded base64url of the UTF-8', () => {
    const next = random(4);
    for (let i = 0; i < 500; i++) {
      const uid = randomUid(next);
      expect(cursorAfter(uid)).toBe(Buffer.from(uid).toString('base64url'));
    }
  });

  it('refuses every cursor it did not make instead of reading some uid out of it', () => {
    // Buffer would read each of these as some uid: it skips characters it cannot decode
    // and drops trailing bits.
    for (const cursor of ['', 'forged', '%%%', 'YWxpY2U=', 'YWxp Y2U', 'a', '_w', 'not-a-cursor', 'YWxpY2U.']) {
      expect(() => uidOfCursor(cursor), cursor).toThrow(UidpushError);
    }
  });
});

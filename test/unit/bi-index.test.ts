import { describe, expect, it } from 'vitest';
import { BiIndex } from '../../src/core/bi-index.js';
import { joinWithin } from '../../src/core/limits.js';

describe('BiIndex', () => {
  it('answers a pair from both sides and counts each key once', () => {
    const index = new BiIndex<string, string>();
    expect(index.add('news', 'alice')).toBe(true);
    expect(index.add('news', 'bob')).toBe(true);
    expect(index.add('sport', 'alice')).toBe(true);
    expect(index.add('news', 'alice')).toBe(false);
    expect([...index.rightsOf('news')]).toEqual(['alice', 'bob']);
    expect([...index.leftsOf('alice')]).toEqual(['news', 'sport']);
    expect(index.has('sport', 'alice')).toBe(true);
    expect(index.has('sport', 'bob')).toBe(false);
    expect(index.leftCount).toBe(2);
    expect(index.rightCount).toBe(2);
  });

  it('removes a pair from both sides and forgets a key whose last pair goes', () => {
    const index = new BiIndex<string, string>();
    index.add('news', 'alice');
    index.add('news', 'bob');
    expect(index.delete('news', 'alice')).toBe(true);
    expect(index.delete('news', 'alice')).toBe(false);
    expect(index.delete('nowhere', 'alice')).toBe(false);
    expect(index.leftsOf('alice').size).toBe(0);
    expect(index.rightCount).toBe(1);
    expect(index.delete('news', 'bob')).toBe(true);
    expect(index.leftCount).toBe(0);
    expect(index.rightCount).toBe(0);
    expect(index.rightsOf('news').size).toBe(0);
  });

  it('keeps both sides equal through any mix of adds and removes', () => {
    const index = new BiIndex<number, number>();
    const pairs = new Set<string>();
    let s = 7;
    for (let i = 0; i < 2000; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      const l = s % 13;
      const r = (s >> 8) % 17;
      const key = `${String(l)}:${String(r)}`;
      if ((s >> 16) % 3 === 0) expect(index.delete(l, r)).toBe(pairs.delete(key));
      else {
        expect(index.add(l, r)).toBe(!pairs.has(key));
        pairs.add(key);
      }
    }
    const fromLeft = new Set<string>();
    const fromRight = new Set<string>();
    for (let l = 0; l < 13; l++) for (const r of index.rightsOf(l)) fromLeft.add(`${String(l)}:${String(r)}`);
    for (let r = 0; r < 17; r++) for (const l of index.leftsOf(r)) fromRight.add(`${String(l)}:${String(r)}`);
    expect(fromLeft).toEqual(pairs);
    expect(fromRight).toEqual(pairs);
  });
});

describe('joinWithin', () => {
  it('adds within the caps, never refuses an existing membership, and refuses a full uid or group', () => {
    const index = new BiIndex<string, string>();
    const limits = { maxGroupsPerUid: 1, maxMembersPerGroup: 2 };
    expect(joinWithin(index, 'a', 'u', limits)).toBe('added');
    expect(joinWithin(index, 'a', 'u', limits)).toBe('member');
    expect(joinWithin(index, 'b', 'u', limits)).toBe('uid_full');
    expect(joinWithin(index, 'a', 'v', limits)).toBe('added');
    expect(joinWithin(index, 'a', 'w', limits)).toBe('group_full');
    expect([...index.rightsOf('a')]).toEqual(['u', 'v']);
    expect(index.leftsOf('w').size).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { TokenCutoffs } from '../../src/auth/cutoffs.js';

const T = 1_764_600_000_000; // a kick at a whole second, in ms

describe('token cut-offs', () => {
  it('refuses tokens of the uid issued before the cut-off, and only those', () => {
    const cutoffs = new TokenCutoffs();
    cutoffs.add('alice', { before: T, until: T + 60_000 });
    expect(cutoffs.refusal('alice', T / 1000 - 1, T)).toBe('token revoked: issued before its uid was kicked');
    expect(cutoffs.refusal('alice', T / 1000, T)).toBeUndefined(); // the kick's own second
    expect(cutoffs.refusal('alice', T / 1000 + 5, T)).toBeUndefined();
    expect(cutoffs.refusal('bob', T / 1000 - 1, T)).toBeUndefined();
  });

  it('refuses a token without iat while a cut-off holds for its uid', () => {
    const cutoffs = new TokenCutoffs();
    expect(cutoffs.refusal('alice', undefined, T)).toBeUndefined();
    cutoffs.add('alice', { before: T, until: T + 60_000 });
    expect(cutoffs.refusal('alice', undefined, T)).toBe('token revoked: it has no iat and its uid was kicked');
    expect(cutoffs.refusal('alice', '1764600000', T)).toMatch(/no iat/); // not a NumericDate
  });

  it('forgets a cut-off once it expires', () => {
    const cutoffs = new TokenCutoffs();
    cutoffs.add('alice', { before: T, until: T + 1000 });
    cutoffs.add('bob', { before: T, until: T + 5000 });
    expect(cutoffs.refusal('alice', 0, T + 999)).toMatch(/revoked/);
    expect(cutoffs.refusal('alice', 0, T + 1000)).toBeUndefined();
    expect(cutoffs.size).toBe(1);
    cutoffs.prune(T + 5000);
    expect(cutoffs.size).toBe(0);
  });

  it('merges two cut-offs of one uid into the later bounds, whatever their order', () => {
    const a = new TokenCutoffs();
    const b = new TokenCutoffs();
    const first = { before: T, until: T + 10_000 };
    const second = { before: T + 3000, until: T + 5000 };
    a.add('u', first);
    a.add('u', second);
    b.add('u', second);
    b.add('u', first);
    for (const c of [a, b]) {
      expect(c.refusal('u', (T + 2000) / 1000, T + 6000)).toMatch(/revoked/);
      expect(c.refusal('u', (T + 3000) / 1000, T + 6000)).toBeUndefined();
      expect(c.refusal('u', 0, T + 10_000)).toBeUndefined();
    }
  });
});

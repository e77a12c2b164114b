import { describe, expect, it } from 'vitest';
import { backoffDelay, isDuplicate, jwtExpiry, refreshDelay } from '../../src/client/policy.js';

describe('backoffDelay (full jitter)', () => {
  it('draws from [0, min * 2^attempt), capped at max', () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).toBe(0);
    expect(backoffDelay(0, 500, 30_000, () => 0.999999)).toBe(499);
    expect(backoffDelay(3, 500, 30_000, () => 0.5)).toBe(2000);
    expect(backoffDelay(10, 500, 30_000, () => 0.5)).toBe(15_000);
    // Past the cap, and far past it (2^attempt overflowing), the window stays max.
    expect(backoffDelay(50, 500, 30_000, () => 0.999999)).toBe(29_999);
    expect(backoffDelay(5000, 500, 30_000, () => 0.5)).toBe(15_000);
  });

  it('stays within the window for any random draw', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cap = Math.min(30_000, 500 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const delay = backoffDelay(attempt, 500, 30_000);
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(cap);
      }
    }
  });
});

describe('isDuplicate (dedupe by offset)', () => {
  it('drops an offset at or below the last one of the same epoch', () => {
    const last = { epoch: 'e1', offset: 10 };
    expect(isDuplicate(last, 'e1', 9)).toBe(true);
    expect(isDuplicate(last, 'e1', 10)).toBe(true);
    expect(isDuplicate(last, 'e1', 11)).toBe(false);
  });

  it('keeps everything of another epoch, and everything before any position', () => {
    expect(isDuplicate({ epoch: 'e1', offset: 10 }, 'e2', 1)).toBe(false);
    expect(isDuplicate(undefined, 'e1', 1)).toBe(false);
  });
});

describe('token expiry', () => {
  const jwt = (claims: object): string => `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;

  it('reads exp from a JWT, in ms; undefined for anything else', () => {
    expect(jwtExpiry(jwt({ sub: 'a', exp: 1_700_000_000 }))).toBe(1_700_000_000_000);
    expect(jwtExpiry(jwt({ sub: 'a' }))).toBeUndefined();
    expect(jwtExpiry('opaque-token')).toBeUndefined();
    expect(jwtExpiry('a.!!!.b')).toBeUndefined();
  });

  it('refreshes 30 s before a long token expires, at half-life for a short one', () => {
    expect(refreshDelay(3_600_000, 0)).toBe(3_570_000);
    expect(refreshDelay(20_000, 0)).toBe(10_000);
    expect(refreshDelay(100, 200)).toBe(0);
  });
});

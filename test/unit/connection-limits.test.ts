import { describe, expect, it, vi } from 'vitest';
import { sweepInterval, throttled } from '../../src/api/connection-limits.js';
import { fileLimitWarning, parseOpenFileLimit } from '../../src/server/file-limit.js';
import { resolveServerOptions } from '../../src/server/options.js';

describe('sweepInterval', () => {
  it('is a quarter of the timeout, between 10 ms and 1 s', () => {
    expect(sweepInterval(300)).toBe(75);
    expect(sweepInterval(2000)).toBe(500);
    expect(sweepInterval(10_000)).toBe(1000);
    expect(sweepInterval(60_000)).toBe(1000);
    expect(sweepInterval(10)).toBe(10);
  });
});

describe('throttled', () => {
  it('runs at most once per period and reports how many calls it skipped', () => {
    vi.useFakeTimers({ now: 0 });
    try {
      const calls: number[] = [];
      const warn = throttled(60_000, (skipped) => calls.push(skipped));
      warn();
      warn();
      warn();
      expect(calls).toEqual([0]);
      vi.setSystemTime(59_999);
      warn();
      expect(calls).toEqual([0]);
      vi.setSystemTime(60_000);
      warn();
      expect(calls).toEqual([0, 3]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('connection limit options', () => {
  it('defaults to headers 10 s, request 30 s, keep-alive 5 s, 1,000 API and 256 inner connections, inner idle 60 s', () => {
    expect(resolveServerOptions({})).toMatchObject({
      apiHeadersTimeout: 10_000,
      apiRequestTimeout: 30_000,
      apiKeepAliveTimeout: 5_000,
      apiMaxConnections: 1000,
      innerIdleTimeout: 60_000,
      innerMaxConnections: 256,
    });
  });

  it('refuses a header timeout longer than the request timeout', () => {
    expect(() => resolveServerOptions({ apiHeadersTimeout: 5000, apiRequestTimeout: 4000 })).toThrow(
      /apiHeadersTimeout: apiHeadersTimeout must not be longer than apiRequestTimeout/,
    );
  });
});

describe('file limit', () => {
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units',
    'Max processes             63432                63432                processes',
    'Max open files            1024                 524288               files',
  ].join('\n');

  it('reads the soft limit on open files from /proc/self/limits', () => {
    expect(parseOpenFileLimit(limits)).toBe(1024);
    expect(parseOpenFileLimit(limits.replace('1024 ', 'unlimited '))).toBeUndefined();
    expect(parseOpenFileLimit('')).toBeUndefined();
  });

  it('warns when the API and inner-port caps may take over half of the file limit', () => {
    expect(fileLimitWarning(1024, { api: 1000 })).toMatch(/hold 1000 connections, more than half of this process's file limit \(1024\)/);
    expect(fileLimitWarning(1024, { api: 256, inner: 256 })).toBeUndefined();
    expect(fileLimitWarning(1024, { api: 256, inner: 257 })).toMatch(/hold 513 connections/);
    expect(fileLimitWarning(20_000, { api: 1000, inner: 256 })).toBeUndefined();
    expect(fileLimitWarning(undefined, { api: 1000 })).toBeUndefined();
  });
});

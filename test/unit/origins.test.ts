import { describe, expect, it } from 'vitest';
import { compileOrigins, isLocalOrigin, isLoopbackHostHeader, originPolicy } from '../../src/core/origins.js';

describe('origin patterns', () => {
  const compiled = compileOrigins(['https://app.example.com', 'https://*.example.org', 'http://localhost:*', 'https://x.example.net:8443']);
  const allows = compiled.ok ? compiled.allows : (): boolean => false;

  it('matches exact origins, subdomain patterns and any-port patterns, case-insensitively', () => {
    for (const origin of [
      'https://app.example.com',
      'HTTPS://App.Example.Com',
      'https://a.example.org',
      'https://a.b.example.org',
      'http://localhost:1',
      'http://localhost',
      'https://x.example.net:8443',
    ]) {
      expect(allows(origin), origin).toBe(true);
    }
  });

  it('matches nothing else: other schemes, ports, parent domains, look-alikes, paths, lists', () => {
    for (const origin of [
      'http://app.example.com',
      'https://app.example.com:443',
      'https://example.org',
      'https://evilexample.org',
      'https://example.org.evil',
      'https://x.example.net',
      'https://app.example.com/',
      'https://app.example.com, https://evil',
      'http://localhost:*',
      'null',
      '',
    ]) {
      expect(allows(origin), origin).toBe(false);
    }
  });

  it('names the first entry it cannot read', () => {
    expect(compileOrigins(['https://ok.example', 'ftp//bad'])).toEqual({ ok: false, entry: 'ftp//bad' });
    expect(compileOrigins(['https://*'])).toEqual({ ok: false, entry: 'https://*' });
    expect(compileOrigins(['https://a.*.com'])).toEqual({ ok: false, entry: 'https://a.*.com' });
  });
});

describe('origin policy', () => {
  it('without a list and without auth: no Origin and loopback origins only', () => {
    const check = originPolicy(undefined, false);
    expect(check(undefined)).toBe(true);
    expect(check('http://127.0.0.1:8080')).toBe(true);
    expect(check('http://[::1]:3000')).toBe(true);
    expect(check('https://localhost')).toBe(true);
    expect(check('https://evil.example')).toBe(false);
    expect(check('null')).toBe(false);
    expect(check('file://')).toBe(false);
  });

  it('without a list and with auth: any origin; with a list: the list and no Origin', () => {
    expect(originPolicy(undefined, true)('https://evil.example')).toBe(true);
    const check = originPolicy(['https://app.example.com'], true);
    expect(check(undefined)).toBe(true);
    expect(check('https://app.example.com')).toBe(true);
    expect(check('https://evil.example')).toBe(false);
    expect(check('http://localhost:1')).toBe(false);
  });
});

describe('loopback Host headers and local origins', () => {
  it('takes loopback names with any port and refuses every other name', () => {
    for (const host of ['localhost', 'localhost:1', '127.0.0.1', '127.9.9.9:80', '[::1]', '[::1]:1235']) {
      expect(isLoopbackHostHeader(host), host).toBe(true);
    }
    for (const host of ['evil.example', 'evil.example:1235', '127.0.0.1.evil.example', 'localhost.evil', '10.0.0.1', '::1', '', 'a b']) {
      expect(isLoopbackHostHeader(host), host).toBe(false);
    }
  });

  it('treats a missing Origin as local (not a browser) and only loopback pages as local', () => {
    expect(isLocalOrigin(undefined)).toBe(true);
    expect(isLocalOrigin('http://localhost:5173')).toBe(true);
    expect(isLocalOrigin('https://evil.example')).toBe(false);
    expect(isLocalOrigin('null')).toBe(false);
  });
});

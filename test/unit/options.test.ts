import { describe, expect, it } from 'vitest';
import { ProgramErrorCode, UidpushError } from '../../src/core/errors.js';
import { authEnabled, defaultClientRights, resolveServerOptions } from '../../src/server/options.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';

/** The message of the refusal of `input`; fails the test when it is accepted. */
function refusal(input: unknown): string {
  try {
    resolveServerOptions(input);
  } catch (err) {
    expect(err).toBeInstanceOf(UidpushError);
    expect((err as UidpushError).code).toBe(ProgramErrorCode.InvalidConfig);
    return (err as UidpushError).message;
  }
  throw new Error('options accepted');
}

describe('resolveServerOptions: defaults', () => {
  it('fills in the defaults of an empty input', () => {
    const o = resolveServerOptions({});
    expect(o).toMatchObject({
      host: '127.0.0.1',
      port: 1234,
      maxMessageSize: 1024 * 1024,
      maxPreLoginMessageSize: 16 * 1024,
      heartbeatInterval: 25_000,
      idleTimeout: 60_000,
      loginTimeout: 10_000,
      maxBufferedBytes: 1024 * 1024,
      slowConsumerPolicy: 'close',
      apiPort: null,
      innerPort: null,
      insecure: false,
      redisNamespace: 'uidpush',
    });
    expect(authEnabled(o)).toBe(false);
    expect(defaultClientRights(o)).toEqual(['send', 'broadcast', 'publish', 'join']);
  });

  it('derives idleTimeout from heartbeatInterval when unset', () => {
    expect(resolveServerOptions({ heartbeatInterval: 1000 }).idleTimeout).toBe(12_000);
    expect(resolveServerOptions({ heartbeatInterval: 1000, idleTimeout: 1001 }).idleTimeout).toBe(1001);
  });

  it('gives token clients only send by default, and the configured rights when set', () => {
    expect(defaultClientRights(resolveServerOptions({ jwtSecret: SECRET }))).toEqual(['send']);
    expect(defaultClientRights(resolveServerOptions({ jwtSecret: SECRET, clientRights: ['join'] }))).toEqual(['join']);
  });
});

describe('resolveServerOptions: refusals', () => {
  it.each([
    [{ port: 65536 }, 'port'],
    [{ port: -1 }, 'port'],
    [{ maxMessageSize: 8 }, 'maxMessageSize'],
    [{ slowConsumerPolicy: 'block' }, 'slowConsumerPolicy'],
    [{ jwtSecret: 'short' }, 'jwtSecret'],
    [{ apiKey: 'short' }, 'apiKey'],
    [{ clientRights: ['fly'] }, 'clientRights.0'],
    [{ redis: 'http://x' }, 'redis'],
    [{ heartbeatInterval: 1.5 }, 'heartbeatInterval'],
  ])('refuses %j, naming %s', (input, field) => {
    expect(refusal(input)).toContain(`  - ${field}: `);
  });

  it('refuses an unknown option', () => {
    expect(refusal({ prot: 1 })).toMatch(/prot/);
  });

  it('refuses an entry of allowedOrigins that is no origin, quoting it', () => {
    expect(refusal({ allowedOrigins: ['example.com/path'] })).toContain(
      "allowedOrigins: 'example.com/path' is not an origin (scheme://host[:port]) or pattern",
    );
  });

  it('explains a bad redis URL', () => {
    expect(refusal({ redis: 'localhost:6379' })).toContain('expected redis://, rediss://');
  });

  it('lists every bad field, one line each', () => {
    const message = refusal({ port: 'x', maxUidLength: 0 });
    expect(message.startsWith('invalid configuration:\n')).toBe(true);
    expect(message.split('\n').filter((l) => l.startsWith('  - '))).toHaveLength(2);
  });
});

describe('resolveServerOptions: checks across fields', () => {
  it('refuses two key sources at once', () => {
    expect(refusal({ jwtSecret: SECRET, jwks: '/k.json' })).toContain('jwtSecret: set at most one of jwtSecret, jwtPublicKey and jwks');
  });

  it('refuses jwtAudience or jwtIssuer without token auth', () => {
    expect(refusal({ jwtAudience: 'a' })).toContain('jwtAudience: jwtAudience and jwtIssuer check tokens');
    expect(refusal({ jwtIssuer: 'i' })).toContain('jwtAudience: jwtAudience and jwtIssuer check tokens');
    expect(resolveServerOptions({ jwtSecret: SECRET, jwtAudience: 'a' }).jwtAudience).toBe('a');
  });

  it('refuses a non-loopback host without auth (protected mode) unless insecure', () => {
    expect(refusal({ host: '0.0.0.0' })).toContain('host: protected mode');
    expect(resolveServerOptions({ host: '0.0.0.0', insecure: true }).host).toBe('0.0.0.0');
    expect(resolveServerOptions({ host: '0.0.0.0', jwtSecret: SECRET }).host).toBe('0.0.0.0');
    expect(resolveServerOptions({ host: '::1' }).host).toBe('::1');
  });

  it('requires an API key for an API on a non-loopback address, not for one that is off', () => {
    expect(refusal({ apiHost: '0.0.0.0', apiPort: 1235 })).toContain('apiKey: an API key (apiKey) is required');
    expect(resolveServerOptions({ apiHost: '0.0.0.0' }).apiPort).toBeNull();
    expect(resolveServerOptions({ apiHost: '0.0.0.0', apiPort: 1235, apiKey: 'k'.repeat(16) }).apiPort).toBe(1235);
  });

  it('names the missing half of a TLS pair', () => {
    expect(refusal({ tlsCert: '/c.pem' })).toContain('tlsKey: set both tlsCert and tlsKey, or neither');
    expect(refusal({ tlsKey: '/k.pem' })).toContain('tlsCert: set both tlsCert and tlsKey, or neither');
  });

  it('refuses apiTls without a certificate', () => {
    expect(refusal({ apiTls: true })).toContain('apiTls: apiTls needs a certificate');
    expect(resolveServerOptions({ apiTls: false }).apiTls).toBe(false);
  });

  it('refuses a headers timeout longer than the request timeout', () => {
    expect(refusal({ apiHeadersTimeout: 5000, apiRequestTimeout: 4000 })).toContain(
      'apiHeadersTimeout: apiHeadersTimeout must not be longer than apiRequestTimeout',
    );
    expect(resolveServerOptions({ apiHeadersTimeout: 4000, apiRequestTimeout: 4000 }).apiRequestTimeout).toBe(4000);
  });

  it('refuses an idle timeout not longer than the heartbeat interval', () => {
    expect(refusal({ heartbeatInterval: 1000, idleTimeout: 1000 })).toContain(
      'idleTimeout: idleTimeout must be longer than heartbeatInterval',
    );
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type ServerOptions } from '../../src/index.js';
import { connect, connectV1, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { warningLog } from '../helpers/logs.js';
import { hs256, keyFiles, now, SECRET, signWith, unsigned } from '../helpers/tokens.js';

/**
 * An `exp` (seconds) between one and two seconds from now. `now() + 1` may be a few ms
 * away, and a token that expires before its login is refused instead of closed with 4003.
 */
const soon = (): number => Math.ceil(Date.now() / 1000) + 1;

let started: Started | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started?.stop();
  started = undefined;
});

async function setup(options: ServerOptions = {}): Promise<Started> {
  started = await startServer({ jwtSecret: SECRET, ...options });
  return started;
}
function track(c: TestClient): TestClient {
  clients.push(c);
  return c;
}
/** A v1 client that authenticates with an auth frame and returns the first answer. */
async function v1Auth(url: string, token: string): Promise<[TestClient, Record<string, unknown>]> {
  const c = track(await connectV1(url));
  c.sendJson({ type: 'auth', id: 'a', token });
  return [c, await c.nextJson()];
}

describe('token auth (HS256)', () => {
  it('accepts a valid token in an auth frame: sub is the uid', async () => {
    const { url } = await setup();
    const [, welcome] = await v1Auth(url, await hs256({ sub: 'alice', exp: now() + 60 }));
    expect(welcome).toMatchObject({ type: 'welcome', uid: 'alice', id: 'a' });
  });

  it('accepts a token in the query string, logged in at connect', async () => {
    const { url } = await setup();
    const token = await hs256({ sub: 'q' });
    const c = track(await connectV1(`${url}/?token=${token}`));
    expect(await c.nextJson()).toMatchObject({ type: 'welcome', uid: 'q' });
  });

  it('accepts a token in the Authorization header', async () => {
    const { url } = await setup();
    const token = await hs256({ sub: 'h' });
    const c = track(await connectV1(url, { headers: { authorization: `Bearer ${token}` } }));
    expect(await c.nextJson()).toMatchObject({ type: 'welcome', uid: 'h' });
  });

  it('takes the token as the first message of the seed protocol', async () => {
    const { url } = await setup();
    const c = track(await connect(url));
    c.send(await hs256({ sub: 'seedy' }));
    expect(await c.next()).toBe('login success, your uid is seedy');
  });

  it('logs a seed client in at connect with a handshake token, and keeps message order', async () => {
    const { url, server } = await setup();
    const bob = track(await connect(url));
    bob.send(await hs256({ sub: 'bob' }));
    await bob.next();
    const token = await hs256({ sub: 'alice' });
    const alice = track(await connect(`${url}/?token=${token}`));
    expect(await alice.next()).toBe('login success, your uid is alice');
    alice.send('bob:1');
    alice.send('bob:2');
    expect([await bob.next(), await bob.next()]).toEqual(['1', '2']);
    expect(server.local.isOnline('alice')).toBe(true);
  });

  it('replays in order the messages sent while the first-message token is verified', async () => {
    const { url } = await setup({ clientRights: ['send'] });
    const bob = track(await connect(url));
    bob.send(await hs256({ sub: 'bob' }));
    await bob.next();
    const alice = track(await connect(url));
    alice.send(await hs256({ sub: 'alice' }));
    alice.send('bob:first');
    alice.send('bob:second');
    expect(await alice.next()).toBe('login success, your uid is alice');
    expect([await bob.next(), await bob.next()]).toEqual(['first', 'second']);
  });

  const refused: [string, () => Promise<string>, RegExp][] = [
    ['an expired token', () => hs256({ sub: 'x', exp: now() - 10 }), /token expired/],
    ['a token not yet valid', () => hs256({ sub: 'x', nbf: now() + 3600 }), /not yet valid/],
    ['a wrong signature', () => hs256({ sub: 'x' }, 'another-secret-that-is-long-enough-42'), /signature invalid/],
    ['alg none', () => Promise.resolve(unsigned({ sub: 'x' })), /algorithm not allowed|malformed|refused/],
    ['a wrong algorithm (HS512)', () => hs256({ sub: 'x' }, SECRET, 'HS512'), /algorithm not allowed/],
    ['a missing sub', () => hs256({ name: 'x' }), /no sub/],
    ['a bad rights claim', () => hs256({ sub: 'x', rights: ['fly'] }), /invalid rights claim/],
    ['garbage', () => Promise.resolve('not.a.token'), /malformed|refused/],
  ];

  it.each(refused)('refuses %s: error unauthorized, then close 4502', async (_name, make, reason) => {
    const { url } = await setup();
    const [c, error] = await v1Auth(url, await make());
    expect(error).toMatchObject({ type: 'error', code: 'unauthorized', id: 'a' });
    expect(error.message).toMatch(reason);
    expect(await c.closed()).toBe(4502);
    expect(c.closeReason).toMatch(reason);
  });

  it('refuses a bad handshake token with close 4502 before any message', async () => {
    const { url } = await setup();
    const c = track(await connect(`${url}/?token=${unsigned({ sub: 'x' })}`));
    expect(await c.next()).toMatch(/^error: unauthorized /);
    expect(await c.closed()).toBe(4502);
  });

  it('refuses a bad first-message token on the seed protocol', async () => {
    const { url } = await setup();
    const c = track(await connect(url));
    c.send('alice'); // a plain uid is not a token when auth is on
    expect(await c.next()).toBe('error: unauthorized malformed token');
    expect(await c.closed()).toBe(4502);
  });

  it('closes a connection whose token expires with 4003', async () => {
    const { url } = await setup({ heartbeatInterval: 50, idleTimeout: 5000 });
    const [c, welcome] = await v1Auth(url, await hs256({ sub: 'brief', exp: soon() }));
    expect(welcome).toMatchObject({ type: 'welcome' });
    expect(await c.closed(4000)).toBe(4003);
    expect(c.closeReason).toBe('token expired');
  });

  it('keeps a connection whose token is refreshed before expiry', async () => {
    const { url, server } = await setup({ heartbeatInterval: 50, idleTimeout: 5000 });
    const exp = soon();
    const [c] = await v1Auth(url, await hs256({ sub: 'long', exp }));
    // The same expiry, not refreshed: its 4003 is the moment the first one would have closed.
    const [control] = await v1Auth(url, await hs256({ sub: 'control', exp }));
    const later = now() + 3600;
    c.sendJson({ type: 'auth', id: 'r', token: await hs256({ sub: 'long', exp: later }) });
    expect(await c.nextJson()).toEqual({ type: 'ack', id: 'r', result: { refreshed: true, expiresAt: later * 1000 } });
    expect(await control.closed(4000)).toBe(4003);
    // A round trip after it: a close sent in the same tick would have arrived first.
    c.sendJson({ type: 'ping', id: 'after' });
    expect(await c.nextJson()).toEqual({ type: 'pong', id: 'after' });
    expect(c.closeCode).toBeUndefined();
    expect(server.local.isOnline('long')).toBe(true);
  });

  it('refuses a refresh with a token for another uid, keeping the connection', async () => {
    const { url } = await setup();
    const [c] = await v1Auth(url, await hs256({ sub: 'me' }));
    c.sendJson({ type: 'auth', id: 'r', token: await hs256({ sub: 'someone-else' }) });
    expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 'r' });
    expect(c.closeCode).toBeUndefined();
  });

  it('closes a client that does not authenticate in time with 4002', async () => {
    const { url } = await setup({ loginTimeout: 100, heartbeatInterval: 50 });
    const c = track(await connectV1(url));
    expect(await c.closed()).toBe(4002);
  });

  it('asks for a token, not a uid, in the auth frame when auth is on', async () => {
    const { url } = await setup();
    const c = track(await connectV1(url));
    c.sendJson({ type: 'auth', id: 1, uid: 'alice' });
    expect(await c.nextJson()).toMatchObject({ type: 'error', code: 'bad_request', message: 'auth: token required', id: 1 });
  });
});

describe('token auth with public keys', () => {
  it('verifies RS256 with an RSA public key file, refusing HS256 tokens', async () => {
    const keys = await keyFiles();
    const { url } = await setup({ jwtSecret: undefined, jwtPublicKey: keys.rsaPublicPath });
    const [, welcome] = await v1Auth(url, await signWith(keys.rsa, 'RS256', { sub: 'rsa-user' }));
    expect(welcome).toMatchObject({ type: 'welcome', uid: 'rsa-user' });
    const [, error] = await v1Auth(url, await hs256({ sub: 'x' }));
    expect(error).toMatchObject({ code: 'unauthorized', message: 'token algorithm not allowed' });
  });

  it('verifies ES256 with an EC P-256 public key file', async () => {
    const keys = await keyFiles();
    const { url } = await setup({ jwtSecret: undefined, jwtPublicKey: keys.ecPublicPath });
    const [, welcome] = await v1Auth(url, await signWith(keys.ec, 'ES256', { sub: 'ec-user' }));
    expect(welcome).toMatchObject({ type: 'welcome', uid: 'ec-user' });
    const [, error] = await v1Auth(url, await signWith(keys.rsa, 'RS256', { sub: 'x' }));
    expect(error).toMatchObject({ code: 'unauthorized' });
  });

  it('verifies against a JWKS file by kid', async () => {
    const keys = await keyFiles();
    const { url } = await setup({ jwtSecret: undefined, jwks: keys.jwksPath });
    const [, a] = await v1Auth(url, await signWith(keys.rsa, 'RS256', { sub: 'j1' }, 'rsa1'));
    expect(a).toMatchObject({ type: 'welcome', uid: 'j1' });
    const [, b] = await v1Auth(url, await signWith(keys.ec, 'ES256', { sub: 'j2' }, 'ec1'));
    expect(b).toMatchObject({ type: 'welcome', uid: 'j2' });
    const [, c] = await v1Auth(url, await signWith(keys.rsa, 'RS256', { sub: 'j3' }, 'unknown-kid'));
    expect(c).toMatchObject({ code: 'unauthorized', message: 'no key matches the token' });
  });

  it('fails to listen, with a clear error, when the key file cannot be read', async () => {
    const server = createServer({ port: 0, apiPort: null, jwtPublicKey: '/nonexistent/key.pem' });
    await expect(server.listen()).rejects.toMatchObject({
      code: 'UIDPUSH_ERR_INVALID_CONFIG',
      message: expect.stringMatching(/cannot load the token key/) as string,
    });
  });
});

describe('protected mode', () => {
  it('refuses to start without auth on a non-loopback address unless insecure', () => {
    expect(() => createServer({ host: '0.0.0.0', apiPort: null })).toThrow(/protected mode/);
    expect(() => createServer({ host: '0.0.0.0', apiPort: null, insecure: true })).not.toThrow();
    expect(() => createServer({ host: '0.0.0.0', apiPort: null, jwtSecret: SECRET })).not.toThrow();
    expect(() => createServer({ host: '::1', apiPort: null })).not.toThrow();
  });

  it('warns when auth is off, louder when exposed', async () => {
    const { logger, warnings } = warningLog();
    started = await startServer({ logger });
    expect(warnings.some((w) => w.msg.includes('token auth is off'))).toBe(true);
    await started.stop();
    warnings.length = 0;
    started = await startServer({ host: '0.0.0.0', insecure: true, logger });
    expect(warnings.some((w) => w.msg.startsWith('INSECURE'))).toBe(true);
  });

  it('refuses more than one key source', () => {
    expect(() => createServer({ jwtSecret: SECRET, jwks: '/x.json' })).toThrow(/at most one of jwtSecret, jwtPublicKey and jwks/);
    expect(() => createServer({ jwtSecret: 'too-short' })).toThrow(/jwtSecret/);
  });
});

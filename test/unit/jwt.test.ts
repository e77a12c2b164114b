import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenCutoffs } from '../../src/auth/cutoffs.js';
import { TokenError, TokenVerifier, type JwtOptions } from '../../src/auth/jwt.js';
import { mintToken, parseDuration } from '../../src/auth/mint.js';

const SECRET = 'a-test-secret-of-at-least-32-characters!';
const MAX_UID = 128;
const nowS = (): number => Math.floor(Date.now() / 1000);

function sign(payload: JWTPayload, key: Uint8Array | KeyObject, header: { alg: string; kid?: string }): Promise<string> {
  return new SignJWT(payload).setProtectedHeader(header).sign(key);
}
const hs = (payload: JWTPayload, secret = SECRET): Promise<string> => sign(payload, new TextEncoder().encode(secret), { alg: 'HS256' });

async function verifier(options: JwtOptions, cutoffs?: TokenCutoffs): Promise<TokenVerifier> {
  const v = await TokenVerifier.create(options, MAX_UID, cutoffs);
  if (v === undefined) throw new Error('no verifier');
  return v;
}

/** The reason a token is refused with; fails the test when it is accepted. */
async function refusal(v: TokenVerifier, token: string): Promise<string> {
  try {
    await v.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return (err as TokenError).message;
  }
  throw new Error('token accepted');
}

let dir: string;
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const pem = (name: string, key: KeyObject): string => {
  const path = join(dir, name);
  writeFileSync(path, key.export({ type: 'spki', format: 'pem' }));
  return path;
};
const jwks = {
  keys: [
    { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ],
};
let jwksServer: Server;
let jwksUrl: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'uidpush-jwt-'));
  jwksServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(jwks));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${String((jwksServer.address() as AddressInfo).port)}/jwks.json`;
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await new Promise<void>((resolve) =>
    jwksServer.close(() => {
      resolve();
    }),
  );
});

describe('TokenVerifier: HS256', () => {
  it('is off without a key source', async () => {
    expect(await TokenVerifier.create({}, MAX_UID)).toBeUndefined();
  });

  it('accepts a signed token and reads sub, rights, groups and exp', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    const exp = nowS() + 60;
    const id = await v.verify(await hs({ sub: 'alice', rights: ['send', 'join'], groups: ['room'], exp }));
    expect(id).toEqual({ uid: 'alice', rights: new Set(['send', 'join']), groups: new Set(['room']), expiresAt: exp * 1000 });
  });

  it('leaves rights, groups and expiry unset when the token has none', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await v.verify(await hs({ sub: 'alice' }))).toEqual({
      uid: 'alice',
      rights: undefined,
      groups: undefined,
      expiresAt: undefined,
    });
  });

  it('refuses a token signed with another secret', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({ sub: 'alice' }, 'another-secret-of-at-least-32-characters'))).toBe('token signature invalid');
  });

  it('refuses an unsigned token (alg none) and another algorithm', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    expect(await refusal(v, `${b64({ alg: 'none' })}.${b64({ sub: 'alice' })}.`)).toBe('token algorithm not allowed');
    expect(await refusal(v, await sign({ sub: 'alice' }, rsa.privateKey, { alg: 'RS256' }))).toBe('token algorithm not allowed');
  });

  it('refuses a malformed token', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, 'not.a.token')).toBe('malformed token');
    expect(await refusal(v, 'garbage')).toBe('malformed token');
  });

  it('refuses an expired token and one not yet valid', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({ sub: 'alice', exp: nowS() - 10 }))).toBe('token expired');
    expect(await refusal(v, await hs({ sub: 'alice', nbf: nowS() + 600 }))).toBe('token not yet valid');
    expect((await v.verify(await hs({ sub: 'alice', nbf: nowS() - 1 }))).uid).toBe('alice');
  });
});

describe('TokenVerifier: sub', () => {
  it('refuses a token without a string sub', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({}))).toBe('token has no sub');
    expect(await refusal(v, await hs({ sub: '' }))).toBe('token has no sub');
  });

  it('refuses a sub the name rules refuse, the broadcast uid included', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({ sub: 'all' }))).toBe("invalid sub: uid 'all' is reserved for broadcast");
    expect(await refusal(v, await hs({ sub: 'a:b' }))).toBe("invalid sub: uid must not contain ':'");
    expect(await refusal(v, await hs({ sub: 'a\nb' }))).toBe('invalid sub: uid must not contain control characters');
    expect(await refusal(v, await hs({ sub: 'x'.repeat(MAX_UID + 1) }))).toBe(`invalid sub: uid longer than ${String(MAX_UID)} bytes`);
    expect((await v.verify(await hs({ sub: 'x'.repeat(MAX_UID) }))).uid).toHaveLength(MAX_UID);
  });
});

describe('TokenVerifier: claims', () => {
  it('refuses an unknown right or a rights claim that is not a list', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({ sub: 'a', rights: ['send', 'fly'] }))).toBe('invalid rights claim');
    expect(await refusal(v, await hs({ sub: 'a', rights: 'send' }))).toBe('invalid rights claim');
  });

  it('refuses a groups claim with a name the rules refuse', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect(await refusal(v, await hs({ sub: 'a', groups: ['ok', 'bad:name'] }))).toBe('invalid groups claim');
    expect(await refusal(v, await hs({ sub: 'a', groups: [1] }))).toBe('invalid groups claim');
    // A group may be named `all`.
    expect((await v.verify(await hs({ sub: 'a', groups: ['all'] }))).groups).toEqual(new Set(['all']));
  });

  it('checks aud when jwtAudience is set: missing, wrong, or in an array', async () => {
    const v = await verifier({ jwtSecret: SECRET, jwtAudience: 'push' });
    expect(await refusal(v, await hs({ sub: 'a' }))).toBe('token has no aud');
    expect(await refusal(v, await hs({ sub: 'a', aud: 'other' }))).toBe('token aud not accepted');
    expect((await v.verify(await hs({ sub: 'a', aud: 'push' }))).uid).toBe('a');
    expect((await v.verify(await hs({ sub: 'a', aud: ['other', 'push'] }))).uid).toBe('a');
  });

  it('checks iss when jwtIssuer is set', async () => {
    const v = await verifier({ jwtSecret: SECRET, jwtIssuer: 'https://auth.example' });
    expect(await refusal(v, await hs({ sub: 'a' }))).toBe('token has no iss');
    expect(await refusal(v, await hs({ sub: 'a', iss: 'https://evil.example' }))).toBe('token iss not accepted');
    expect((await v.verify(await hs({ sub: 'a', iss: 'https://auth.example' }))).uid).toBe('a');
  });

  it('ignores aud and iss when neither is configured', async () => {
    const v = await verifier({ jwtSecret: SECRET });
    expect((await v.verify(await hs({ sub: 'a', aud: 'x', iss: 'y' }))).uid).toBe('a');
  });

  it('refuses a token issued before its uid was kicked with revocation', async () => {
    const cutoffs = new TokenCutoffs();
    const v = await verifier({ jwtSecret: SECRET }, cutoffs);
    const old = await hs({ sub: 'alice', iat: nowS() - 100 });
    expect((await v.verify(old)).uid).toBe('alice');
    cutoffs.add('alice', { before: Date.now() - 50_000, until: Date.now() + 60_000 });
    expect(await refusal(v, old)).toBe('token revoked: issued before its uid was kicked');
    expect((await v.verify(await hs({ sub: 'alice', iat: nowS() }))).uid).toBe('alice');
  });
});

describe('TokenVerifier: public keys', () => {
  it('verifies RS256 with an RSA PEM key and refuses HS256 tokens then', async () => {
    const v = await verifier({ jwtPublicKey: pem('rsa.pem', rsa.publicKey) });
    expect((await v.verify(await sign({ sub: 'alice' }, rsa.privateKey, { alg: 'RS256' }))).uid).toBe('alice');
    expect(await refusal(v, await hs({ sub: 'alice' }))).toBe('token algorithm not allowed');
  });

  it('verifies ES256 with an EC P-256 PEM key', async () => {
    const v = await verifier({ jwtPublicKey: pem('ec.pem', ec.publicKey) });
    expect((await v.verify(await sign({ sub: 'bob' }, ec.privateKey, { alg: 'ES256' }))).uid).toBe('bob');
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(await refusal(v, await sign({ sub: 'bob' }, other.privateKey, { alg: 'ES256' }))).toBe('token signature invalid');
  });

  it('refuses to start with a key of another kind', async () => {
    const p384 = pem('p384.pem', generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey);
    await expect(TokenVerifier.create({ jwtPublicKey: p384 }, MAX_UID)).rejects.toThrow('expected an RSA or EC P-256 public key, got ec');
    const ed = pem('ed.pem', generateKeyPairSync('ed25519').publicKey);
    await expect(TokenVerifier.create({ jwtPublicKey: ed }, MAX_UID)).rejects.toThrow('got ed25519');
  });

  it('picks the JWKS key by kid, from a file', async () => {
    const path = join(dir, 'jwks.json');
    writeFileSync(path, JSON.stringify(jwks));
    const v = await verifier({ jwks: path });
    expect((await v.verify(await sign({ sub: 'r' }, rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' }))).uid).toBe('r');
    expect((await v.verify(await sign({ sub: 'e' }, ec.privateKey, { alg: 'ES256', kid: 'ec-1' }))).uid).toBe('e');
    expect(await refusal(v, await sign({ sub: 'r' }, rsa.privateKey, { alg: 'RS256', kid: 'unknown' }))).toBe('no key matches the token');
  });

  it('fetches the JWKS from an http URL', async () => {
    const v = await verifier({ jwks: jwksUrl });
    expect((await v.verify(await sign({ sub: 'r' }, rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' }))).uid).toBe('r');
  });
});

describe('mintToken', () => {
  it('mints a token the verifier accepts with the same claims', async () => {
    const v = await verifier({ jwtSecret: SECRET, jwtAudience: 'push', jwtIssuer: 'me' });
    const before = nowS();
    const token = await mintToken(SECRET, {
      uid: 'alice',
      groups: ['g'],
      rights: ['send', 'publish'],
      ttlSeconds: 3600,
      audience: 'push',
      issuer: 'me',
    });
    const id = await v.verify(token);
    expect(id.uid).toBe('alice');
    expect(id.groups).toEqual(new Set(['g']));
    expect(id.rights).toEqual(new Set(['send', 'publish']));
    expect(id.expiresAt).toBeGreaterThanOrEqual((before + 3600) * 1000);
    expect(id.expiresAt).toBeLessThanOrEqual((nowS() + 3600) * 1000);
  });

  it('mints a token without exp when no lifetime is given, with iat', async () => {
    const token = await mintToken(SECRET, { uid: 'alice' });
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as JWTPayload;
    expect(payload.exp).toBeUndefined();
    expect(typeof payload.iat).toBe('number');
    expect((await (await verifier({ jwtSecret: SECRET })).verify(token)).expiresAt).toBeUndefined();
  });
});

describe('parseDuration', () => {
  it.each([
    ['90', 90],
    ['45s', 45],
    ['30m', 1800],
    ['1h', 3600],
    ['7d', 604_800],
    [' 2 h ', 7200],
  ])('reads %j as %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', '0', '0s', '-1', '1.5h', '1w', 'h', '1 hour'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

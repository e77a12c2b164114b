import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, SignJWT, type JWTPayload } from 'jose';

export const SECRET = 'test-secret-that-is-long-enough-0123456789';

/** Signs `claims` with HS256 and the test secret, unless told otherwise. */
export function hs256(claims: JWTPayload, secret = SECRET, alg = 'HS256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
}

/** An unsecured token (`alg: none`), which every server must refuse. */
export function unsigned(claims: JWTPayload): string {
  const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

export const now = (): number => Math.floor(Date.now() / 1000);

/** A fresh RSA and EC P-256 key pair, with the public keys and a JWKS written to files. */
export async function keyFiles(): Promise<{
  rsa: KeyObject;
  ec: KeyObject;
  rsaPublicPath: string;
  ecPublicPath: string;
  jwksPath: string;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'uidpush-keys-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const rsaPublicPath = join(dir, 'rsa.pem');
  const ecPublicPath = join(dir, 'ec.pem');
  const jwksPath = join(dir, 'jwks.json');
  await writeFile(rsaPublicPath, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(ecPublicPath, ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const jwk = { ...(await exportJWK(rsa.publicKey)), kid: 'rsa1', alg: 'RS256', use: 'sig' };
  const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec1', alg: 'ES256', use: 'sig' };
  await writeFile(jwksPath, JSON.stringify({ keys: [jwk, ecJwk] }));
  return { rsa: rsa.privateKey, ec: ec.privateKey, rsaPublicPath, ecPublicPath, jwksPath };
}

/** Signs with an asymmetric key. */
export function signWith(key: KeyObject, alg: 'RS256' | 'ES256', claims: JWTPayload, kid?: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(kid === undefined ? { alg } : { alg, kid }).sign(key);
}

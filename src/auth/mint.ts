import { SignJWT } from 'jose';
import type { Group, Uid } from '../core/types.js';
import type { Right } from './rights.js';

/** What a minted token says. */
export interface MintOptions {
  uid: Uid;
  groups?: readonly Group[] | undefined;
  rights?: readonly Right[] | undefined;
  /** Lifetime in seconds; no `exp` (a token that never expires) when undefined. */
  ttlSeconds?: number | undefined;
  /** The `aud` claim, for a server with `jwtAudience`. */
  audience?: string | undefined;
  /** The `iss` claim, for a server with `jwtIssuer`. */
  issuer?: string | undefined;
}

/**
 * Mints an HS256 token with `sub` = uid, `iat` = now, and optional `groups`, `rights`,
 * `exp`, `aud` and `iss`: for development and tests (`uidpush token`). Production tokens
 * come from your own backend.
 */
export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (options.groups !== undefined) claims.groups = options.groups;
  if (options.rights !== undefined) claims.rights = options.rights;
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(options.uid).setIssuedAt();
  if (options.ttlSeconds !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + options.ttlSeconds);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** `90`, `45s`, `30m`, `1h`, `7d` -> seconds; undefined when unreadable. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  return seconds > 0 ? seconds : undefined;
}

import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { checkGroup, checkUid } from '../core/names.js';
import type { Group, Uid } from '../core/types.js';
import type { TokenCutoffs } from './cutoffs.js';
import { RIGHTS, type Right } from './rights.js';

/** Where tokens' keys come from; exactly one is set when auth is on. */
export interface JwtOptions {
  /** HS256 shared secret. */
  jwtSecret?: string | undefined;
  /** Path of a PEM public key: RSA (RS256) or EC P-256 (ES256). */
  jwtPublicKey?: string | undefined;
  /** JWKS: a file path, or an http(s) URL fetched (and cached) by jose. */
  jwks?: string | undefined;
  /** When set, a token must carry this `aud` (or hold it in its `aud` array). */
  jwtAudience?: string | undefined;
  /** When set, a token's `iss` must be exactly this. */
  jwtIssuer?: string | undefined;
}

/** What jose checks besides the signature. */
interface VerifyChecks {
  algorithms: string[];
  audience?: string;
  issuer?: string;
}

/** Who a valid token says the client is, and what it may do. */
export interface Identity {
  uid: Uid;
  /** The `rights` claim, when present. */
  rights: ReadonlySet<Right> | undefined;
  /** The `groups` claim, when present. */
  groups: ReadonlySet<Group> | undefined;
  /** `exp` in ms since the epoch, when present. */
  expiresAt: number | undefined;
}

/** A refused token; the message says why and is safe to show the client. */
export class TokenError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TokenError';
  }
}

/**
 * Verifies client tokens with jose: signature with an allow-list of algorithms (so
 * `alg: none` and algorithm swaps are refused), `exp` and `nbf`, and a string `sub`.
 */
export class TokenVerifier {
  readonly #key: Uint8Array | KeyObject | JWTVerifyGetKey;
  readonly #checks: VerifyChecks;
  readonly #maxUidLength: number;
  readonly #cutoffs: TokenCutoffs | undefined;

  private constructor(
    key: Uint8Array | KeyObject | JWTVerifyGetKey,
    algorithms: string[],
    options: JwtOptions,
    maxUidLength: number,
    cutoffs: TokenCutoffs | undefined,
  ) {
    this.#cutoffs = cutoffs;
    this.#key = key;
    // Built once: the same object for every verification.
    this.#checks = { algorithms };
    if (options.jwtAudience !== undefined) this.#checks.audience = options.jwtAudience;
    if (options.jwtIssuer !== undefined) this.#checks.issuer = options.jwtIssuer;
    this.#maxUidLength = maxUidLength;
  }

  /**
   * Builds the verifier for the configured key source; undefined when auth is off.
   * `cutoffs`, when given, refuses the tokens that kicks revoked.
   */
  static async create(options: JwtOptions, maxUidLength: number, cutoffs?: TokenCutoffs): Promise<TokenVerifier | undefined> {
    if (options.jwtSecret !== undefined) {
      return new TokenVerifier(new TextEncoder().encode(options.jwtSecret), ['HS256'], options, maxUidLength, cutoffs);
    }
    if (options.jwtPublicKey !== undefined) {
      const key = createPublicKey(await readFile(options.jwtPublicKey, 'utf8'));
      const type = key.asymmetricKeyType;
      if (type === 'rsa') return new TokenVerifier(key, ['RS256'], options, maxUidLength, cutoffs);
      if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
        return new TokenVerifier(key, ['ES256'], options, maxUidLength, cutoffs);
      }
      throw new Error(`${options.jwtPublicKey}: expected an RSA or EC P-256 public key, got ${type ?? 'unknown'}`);
    }
    if (options.jwks !== undefined) {
      const source = options.jwks;
      const getKey = /^https?:\/\//.test(source)
        ? createRemoteJWKSet(new URL(source))
        : createLocalJWKSet(JSON.parse(await readFile(source, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
      return new TokenVerifier(getKey, ['RS256', 'ES256'], options, maxUidLength, cutoffs);
    }
    return undefined;
  }

  /**
   * Verifies `token`.
   *
   * @throws TokenError with a reason the client may see.
   */
  async verify(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      const key = this.#key;
      const result = typeof key === 'function' ? await jwtVerify(token, key, this.#checks) : await jwtVerify(token, key, this.#checks);
      payload = result.payload;
    } catch (err) {
      throw new TokenError(reason(err), { cause: err });
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub.length === 0) throw new TokenError('token has no sub');
    // The same rules as a seed login: a sub like `all`, `a:b` or one with a newline would
    // log in as a uid nobody can address.
    const refusal = checkUid(sub, this.#maxUidLength);
    if (refusal !== undefined) throw new TokenError(`invalid sub: ${refusal}`);
    const revoked = this.#cutoffs?.refusal(sub, payload.iat);
    if (revoked !== undefined) throw new TokenError(revoked);
    const maxBytes = this.#maxUidLength;
    return {
      uid: sub,
      rights: claimSet(payload.rights, 'rights', (r): r is Right => (RIGHTS as readonly string[]).includes(r)),
      groups: claimSet(payload.groups, 'groups', (g): g is string => checkGroup(g, maxBytes) === undefined),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    };
  }
}

function claimSet<T extends string>(value: unknown, name: string, valid: (v: string) => v is T): Set<T> | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string' && valid(v))) {
    throw new TokenError(`invalid ${name} claim`);
  }
  return new Set(value as T[]);
}

function reason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'token not yet valid';
    if (err.claim === 'aud' || err.claim === 'iss') {
      return err.reason === 'missing' ? `token has no ${err.claim}` : `token ${err.claim} not accepted`;
    }
    return `token claim ${err.claim} invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key matches the token';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  return 'token refused';
}

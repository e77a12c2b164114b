/**
 * The client SDK's pure rules, kept apart from the socket so they are tested on their own
 * (test/unit/client-backoff.test.ts): the reconnect delay, the dedupe by offset and the
 * token refresh time. Browser-safe, like the rest of `src/client`.
 */

/** A place in a uid's inbox: the epoch and the last offset received in it. */
export interface Position {
  readonly epoch: string;
  readonly offset: number;
}

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * `[0, min(maxMs, minMs * 2^attempt))`. Full jitter (not "equal" jitter) spreads a crowd of
 * clients that lost the same server over the whole window, so they do not reconnect in
 * waves. `random` is injectable for tests.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  // 2^attempt overflows to Infinity past ~1024; Math.min keeps the cap.
  const cap = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * cap);
}

/**
 * Whether a retained message at `offset` of `epoch` was already received at `last`: the same
 * epoch and an offset not above it. A message of another epoch is never a duplicate (the
 * server sends `resync` first; its offsets restart).
 */
export function isDuplicate(last: Position | undefined, epoch: string, offset: number): boolean {
  return last !== undefined && last.epoch === epoch && offset <= last.offset;
}

/**
 * The `exp` claim of a JWT in ms since the epoch, or undefined when the token is not a JWT
 * or has none. The signature is not checked: the server does that; the client only needs
 * to know when to fetch a fresh one.
 */
export function jwtExpiry(token: string): number | undefined {
  const part = token.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4))) as unknown;
    if (typeof claims !== 'object' || claims === null) return undefined;
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** How long before expiry a token is refreshed, when its lifetime allows. */
export const REFRESH_MARGIN_MS = 30_000;

/**
 * When to re-authenticate with a fresh token expiring at `expiresAt` (ms), from `now`: 30 s
 * before it, or at half of what is left for a token shorter than a minute (30 s before a
 * 20 s token would be in the past). Never negative.
 */
export function refreshDelay(expiresAt: number, now: number): number {
  const left = expiresAt - now;
  if (left <= 0) return 0;
  return left > 2 * REFRESH_MARGIN_MS ? left - REFRESH_MARGIN_MS : Math.floor(left / 2);
}

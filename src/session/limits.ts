import type { SessionConnection } from './connection.js';

/** Messages a client may send while the session waits (token, attach); more are refused. */
export const MAX_HELD = 32;

/** How long rate-limit notices stay quiet after one is sent, in ms. */
export const RATE_NOTICE_QUIET_MS = 1000;

/**
 * The per-connection rate limit: a bucket of `burst` messages of credit, refilled at `perSecond`.
 * The credit lives on the connection (two numbers), so the limit costs no timer and no map.
 */
export class RateLimit {
  readonly #perMs: number;
  readonly #burst: number;

  /** @param perSecond - messages per second; 0 turns the limit off. */
  constructor(perSecond: number, burst: number) {
    this.#perMs = perSecond / 1000;
    this.#burst = burst;
  }

  /** Gives a new connection a full burst of credit. */
  start(conn: Pick<SessionConnection, 'credit' | 'creditAt'>, now: number): void {
    conn.credit = this.#burst;
    conn.creditAt = now;
  }

  /** Takes one message's credit; false when none is left (the message is dropped). */
  take(conn: Pick<SessionConnection, 'credit' | 'creditAt'>, now: number): boolean {
    if (this.#perMs === 0) return true;
    const refill = (now - conn.creditAt) * this.#perMs;
    conn.credit = Math.min(this.#burst, conn.credit + refill);
    conn.creditAt = now;
    if (conn.credit < 1) return false;
    conn.credit -= 1;
    return true;
  }

  /**
   * Whether a refused message should be answered with a notice: at most one per
   * {@link RATE_NOTICE_QUIET_MS}, so a flood gets a few answers, not one per message.
   */
  notice(conn: Pick<SessionConnection, 'quietUntil'>, now: number): boolean {
    if (now < conn.quietUntil) return false;
    conn.quietUntil = now + RATE_NOTICE_QUIET_MS;
    return true;
  }
}

/**
 * The receive limits: `preLogin` before login (at most the logged-in one), `maxMessageSize`
 * after. The transport enforces them before a frame is buffered.
 */
export function receiveLimits(o: { maxPreLoginMessageSize: number; maxMessageSize: number }): { preLogin: number; loggedIn: number } {
  return { preLogin: Math.min(o.maxPreLoginMessageSize, o.maxMessageSize), loggedIn: o.maxMessageSize };
}

import { CloseCode } from '../core/close-codes.js';
import type { Logger } from '../core/types.js';
import { PING_FRAME } from '../delivery/ws-frame.js';
import type { Connection } from './connection.js';
import { ExpiryQueue } from './expiry.js';
import { Heartbeat, MAX_TICK_MS } from './heartbeat.js';

/**
 * Buckets of the heartbeat wheel for an interval: one per tick, so every tick sends the
 * same small share of the pings. With ten buckets of a 25 s interval, 100,000 connections
 * would take 10,000 pings (and then 10,000 pongs) in one burst every 2.5 s, tens of ms in
 * which no push is written; a hundred buckets make that 1,000 every 250 ms. (At 19,000
 * connections the bench measured no difference in push latency either way:
 * bench/README.md, issue 14.)
 */
export function heartbeatSlots(intervalMs: number): number {
  return Math.max(10, Math.min(1000, Math.ceil(intervalMs / MAX_TICK_MS)));
}

/** The timings liveness keeps. */
export interface LivenessOptions {
  heartbeatInterval: number;
  idleTimeout: number;
  loginTimeout: number;
  closeGrace: number;
}

/**
 * Every deadline of a connection on one timer: pings and the idle timeout (the wheel),
 * the login timeout, the close grace and token expiry (the shared tick).
 */
export class Liveness {
  readonly #o: LivenessOptions;
  readonly #log: Logger;
  readonly #heartbeat: Heartbeat<Connection>;
  readonly #expiries = new ExpiryQueue<Connection>();
  /**
   * Connections that have not logged in yet, checked for the login timeout. In the order
   * they were accepted, so the oldest come first and the tick stops at the first not due.
   */
  readonly pending = new Set<Connection>();
  /** Closing connections, in the order they started closing (so by `closeBy`). */
  readonly #closing = new Set<Connection>();
  heartbeatCloses = 0;
  closeGraceTerminations = 0;

  /**
   * @param drop - unbinds a connection about to be closed by liveness (idle, expired), so no
   *   push is written to it on its way out.
   * @param everyTick - run at each tick too.
   */
  constructor(o: LivenessOptions, log: Logger, drop: (conn: Connection) => void, everyTick: (now: number) => void) {
    this.#o = o;
    this.#log = log;
    this.#heartbeat = new Heartbeat<Connection>(
      o.heartbeatInterval,
      (conn, now) => {
        if (now - conn.lastSeen > o.idleTimeout) {
          // A dead peer cannot read a close frame; destroy the socket at once.
          this.#log.debug({ conn: conn.id, uid: conn.uid }, 'idle timeout: terminating');
          conn.closedBy = 'server';
          this.heartbeatCloses++;
          drop(conn);
          conn.terminate();
          return;
        }
        // Pings bypass the hub: they are not pushes, and two bytes never trip the cap.
        conn.writeFrame(PING_FRAME);
      },
      (now) => {
        this.#tick(now, drop);
        everyTick(now);
      },
      heartbeatSlots(o.heartbeatInterval),
    );
  }

  /** Open connections, logged in or not. */
  get size(): number {
    return this.#heartbeat.size;
  }

  all(): IterableIterator<Connection> {
    return this.#heartbeat.all();
  }

  /** A new connection: on the wheel, and waiting to log in. */
  add(conn: Connection): void {
    this.#heartbeat.add(conn);
    this.pending.add(conn);
  }

  loggedIn(conn: Connection): void {
    this.pending.delete(conn);
  }

  expireAt(conn: Connection, expiresAt: number): void {
    this.#expiries.set(conn, expiresAt);
  }

  /** `conn` started closing: terminated `closeGrace` from now if the peer has not closed. */
  closing(conn: Connection, now: number): void {
    conn.closeBy = now + this.#o.closeGrace;
    this.#closing.add(conn);
  }

  remove(conn: Connection): void {
    this.#heartbeat.remove(conn);
    this.pending.delete(conn);
    this.#closing.delete(conn);
    this.#expiries.delete(conn);
  }

  stop(): void {
    this.#heartbeat.stop();
  }

  #tick(now: number, drop: (conn: Connection) => void): void {
    // Both sets are in deadline order: each loop stops at the first that is not due.
    for (const conn of this.pending) {
      if (now - conn.connectedAt <= this.#o.loginTimeout) break;
      this.pending.delete(conn);
      this.heartbeatCloses++;
      conn.close(CloseCode.LoginTimeout, 'login timeout');
    }
    for (const conn of this.#closing) {
      if (conn.closeBy > now) break;
      this.#closing.delete(conn);
      this.closeGraceTerminations++;
      this.#log.debug({ conn: conn.id, uid: conn.uid }, 'close grace over: terminating');
      conn.terminate();
    }
    for (const conn of this.#expiries.due(now)) {
      drop(conn);
      conn.close(CloseCode.TokenExpired, 'token expired');
    }
  }
}

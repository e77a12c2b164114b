import type { TokenVerifier } from '../auth/jwt.js';
import { CloseCode } from '../core/close-codes.js';
import { ErrorCode, UnavailableError } from '../core/errors.js';
import { isLimitExceeded } from '../core/limits.js';
import { whenReady, type MaybePromise, type SessionNode } from '../core/service.js';
import type { JsonValue, Logger } from '../core/types.js';
import { codecOf } from '../protocol/codec.js';
import type { RequestId } from '../protocol/json-v1.js';
import type { SessionConnection, SessionEvents, SessionHost, SessionOptions } from './connection.js';

/** Counters of the sessions, monotonic since they were made. */
export interface SessionStats {
  /** Messages received from clients, refused ones included. */
  messagesIn: number;
  /** Bytes of those messages. */
  bytesIn: number;
  /** Client messages refused with an error, by code. */
  refused: Record<ErrorCode, number>;
}

/**
 * What every session module shares: the node (replaced once a cluster exists), the
 * verifier, the options and the ways to answer a client. One object for all connections.
 */
export class SessionContext<C extends SessionConnection> {
  node: SessionNode<C>;
  verifier: TokenVerifier | undefined = undefined;
  readonly options: SessionOptions;
  readonly events: SessionEvents<C>;
  readonly host: SessionHost<C>;
  readonly log: Logger;
  readonly stats: SessionStats = {
    messagesIn: 0,
    bytesIn: 0,
    refused: Object.fromEntries(Object.values(ErrorCode).map((code) => [code, 0])) as Record<ErrorCode, number>,
  };

  constructor(node: SessionNode<C>, options: SessionOptions, host: SessionHost<C>, events: SessionEvents<C>, log: Logger) {
    this.node = node;
    this.options = options;
    this.host = host;
    this.events = events;
    this.log = log;
  }

  send(conn: C, text: string): void {
    conn.sendText(text);
  }

  /** Counts a refusal and reports it. */
  refused(conn: C, code: ErrorCode): void {
    this.stats.refused[code]++;
    this.events.refused(conn, code);
  }

  /** Answers with an error in the connection's protocol; the connection stays open. */
  error(conn: C, code: ErrorCode, text: string, id?: RequestId): void {
    this.refused(conn, code);
    conn.sendText(codecOf(conn.codec).error(code, text, id));
  }

  /** Acks answer requests that asked (carried an id); the rest stay fire-and-forget. */
  ack(conn: C, id: RequestId, result: Record<string, JsonValue>): void {
    if (id === undefined) return;
    const text = codecOf(conn.codec).ack(id, result);
    if (text !== undefined) conn.sendText(text);
  }

  /**
   * The last-resort answer to a throw while handling `conn`: logged, counted, and answered
   * `internal` (with the request's id); if even that fails, only this connection is closed
   * with 1011. Emits no event, so a throwing listener cannot throw again from here.
   */
  internal(conn: C, err: unknown, id: RequestId, doing: string): void {
    this.log.error({ err, conn: conn.id, uid: conn.uid }, `${doing} failed; answered internal`);
    try {
      this.events.internalError(conn);
      if (!conn.isOpen) return;
      conn.sendText(codecOf(conn.codec).error(ErrorCode.Internal, 'internal error', id));
    } catch (again) {
      this.log.error({ err: again, conn: conn.id }, 'answering internal failed; closing the connection with 1011');
      try {
        conn.close(CloseCode.InternalError, 'internal error');
      } catch {
        conn.terminate();
      }
    }
  }

  /**
   * Runs `then` with a routed result when it is ready. A failure is answered, with the
   * request's id: `unavailable` when the cluster's broker failed or did not answer in time
   * (nothing was delivered), `limit_exceeded` for a cap's refusal, `internal` for anything
   * else (a bug, logged). A `then` that runs later, outside the frame's guard, gets a guard
   * of its own: a throw in a promise callback would be an unhandled rejection, which ends
   * the process.
   */
  routed<T>(conn: C, id: RequestId, result: MaybePromise<T>, then: (value: T) => void): void {
    const guarded =
      result instanceof Promise
        ? (value: T): void => {
            try {
              then(value);
            } catch (err) {
              this.internal(conn, err, id, 'answering a client message');
            }
          }
        : then;
    whenReady(result, guarded, (err: unknown) => {
      if (!conn.isOpen) return;
      if (err instanceof UnavailableError) {
        this.error(conn, ErrorCode.Unavailable, err.message, id);
        return;
      }
      if (isLimitExceeded(err)) {
        this.error(conn, ErrorCode.LimitExceeded, err.message, id);
        return;
      }
      this.internal(conn, err, id, 'routing a client message');
    });
  }
}

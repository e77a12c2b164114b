import { TokenError, type Identity, type TokenVerifier } from '../auth/jwt.js';
import { ErrorCode } from '../core/errors.js';
import type { SessionNode } from '../core/service.js';
import type { Logger } from '../core/types.js';
import type { SessionConnection, SessionEvents, SessionHost, SessionOptions } from './connection.js';
import { SessionContext, type SessionStats } from './context.js';
import { RateLimit } from './limits.js';
import { Login } from './login.js';
import { SeedCommands } from './seed-commands.js';
import { V1Commands } from './v1-commands.js';

/**
 * The client sessions of every connection, whatever transport carries them: limits,
 * login, and each protocol's commands, on the node's {@link SessionNode} interface. One
 * object for all connections; what is per connection lives on the connection.
 */
export class Session<C extends SessionConnection> {
  readonly #ctx: SessionContext<C>;
  readonly #rate: RateLimit;
  readonly #login: Login<C>;
  /** The handler of each protocol, indexed by the connection's codec number. */
  readonly #commands: readonly [SeedCommands<C>, V1Commands<C>];

  constructor(node: SessionNode<C>, options: SessionOptions, host: SessionHost<C>, events: SessionEvents<C>, log: Logger) {
    this.#ctx = new SessionContext(node, options, host, events, log);
    this.#rate = new RateLimit(options.rateLimit, options.rateBurst);
    this.#login = new Login(this.#ctx, (conn, data) => {
      this.#dispatch(conn, data);
    });
    this.#commands = [new SeedCommands(this.#ctx, this.#login), new V1Commands(this.#ctx, this.#login)];
  }

  /** The node sessions push through (a cluster's, once it has one). */
  setNode(node: SessionNode<C>): void {
    this.#ctx.node = node;
  }

  /** Turns token auth on (or off, with undefined). */
  setVerifier(verifier: TokenVerifier | undefined): void {
    this.#ctx.verifier = verifier;
  }

  /** A snapshot of the counters. */
  get stats(): SessionStats {
    const s = this.#ctx.stats;
    return { messagesIn: s.messagesIn, bytesIn: s.bytesIn, refused: { ...s.refused } };
  }

  /**
   * Starts the session of a new connection; `auth` is what its handshake token gave (an
   * identity logs in at once, an error refuses it), undefined when it offered none.
   */
  open(conn: C, now: number, auth: Identity | TokenError | undefined): void {
    this.#rate.start(conn, now);
    if (auth instanceof TokenError) this.#login.refuseToken(conn, auth, undefined);
    else if (auth !== undefined) this.#login.withIdentity(conn, auth, undefined);
  }

  /**
   * Handles one message from the client. The last resort: whatever throws (a bug, an
   * embedding program's listener) is answered on that connection only, and never reaches
   * the transport, where it could end the process and every other connection.
   */
  receive(conn: C, data: Buffer, isBinary: boolean, now: number): void {
    try {
      this.#receive(conn, data, isBinary, now);
    } catch (err) {
      this.#ctx.internal(conn, err, undefined, 'handling a client message');
    }
  }

  /** The connection has closed: nothing it sent is replayed. */
  closed(conn: C): void {
    conn.held = undefined;
  }

  /** Counts and reports a refusal the transport made (a frame over the receive limit). */
  refused(conn: C, code: ErrorCode): void {
    this.#ctx.refused(conn, code);
  }

  /** The last-resort answer to a throw while the transport handled `conn` (see {@link receive}). */
  internal(conn: C, err: unknown, doing: string): void {
    this.#ctx.internal(conn, err, undefined, doing);
  }

  #receive(conn: C, data: Buffer, isBinary: boolean, now: number): void {
    const ctx = this.#ctx;
    ctx.stats.messagesIn++;
    ctx.stats.bytesIn += data.length;
    if (!this.#rate.take(conn, now)) {
      if (this.#rate.notice(conn, now)) {
        ctx.error(conn, ErrorCode.RateLimited, `more than ${ctx.options.rateLimit} messages/s; messages dropped`);
      } else {
        ctx.refused(conn, ErrorCode.RateLimited);
      }
      return;
    }
    if (isBinary) {
      ctx.error(conn, ErrorCode.BadRequest, 'binary frames are not supported; send text');
      return;
    }
    // Waiting for a token or the node: keep the order, replay after.
    if (this.#login.hold(conn, data)) return;
    this.#dispatch(conn, data);
  }

  #dispatch(conn: C, data: Buffer): void {
    this.#commands[conn.codec].handle(conn, data);
  }
}

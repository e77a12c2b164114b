import type { Right, Grants } from '../auth/rights.js';
import type { ErrorCode } from '../core/errors.js';
import type { Data, Uid } from '../core/types.js';
import type { Codec } from '../protocol/codec.js';

/**
 * What a client session needs of a connection, whatever carries it (the ws transport's
 * `Connection` implements it; unit tests use a plain object). Fields the session keeps on
 * the connection itself, so a connection costs no session object of its own.
 */
export interface SessionConnection {
  /** A number unique to this connection within the process. */
  readonly id: number;
  /** The protocol it speaks, chosen at the handshake. */
  readonly codec: Codec;
  /** The uid it logged in as; set at login, before the node has attached it. */
  uid: Uid | undefined;
  /** What it may do; undefined until it has logged in. */
  grants: Grants | undefined;
  /**
   * Messages received while the session waits (a token being verified, the node attaching
   * the uid), replayed in order after; undefined when nothing waits.
   */
  held: Buffer[] | undefined;
  /** Rate-limit credit left (messages), and when it was last counted (ms since the epoch). */
  credit: number;
  creditAt: number;
  /** Until when rate-limit notices are not repeated (ms since the epoch). */
  quietUntil: number;
  /** Whether the connection is open: nothing is sent or replayed on one that is not. */
  readonly isOpen: boolean;
  /** Stops reading from the peer (messages already read still arrive, and are held). */
  pause(): void;
  resume(): void;
  /** Sends one text message, under the send-buffer cap of any push. */
  sendText(text: string): void;
  close(code: number, reason: string): void;
  /** Destroys the connection at once: the last resort when even a close throws. */
  terminate(): void;
}

/** The session's limits, from the server's options. */
export interface SessionOptions {
  /** Largest message accepted after login, in bytes: the receive limit set at login. */
  maxMessageSize: number;
  /** Longest uid (and group name), in UTF-8 bytes. */
  maxUidLength: number;
  /** Most levels of nesting in a v1 frame's data; deeper frames are refused unparsed. */
  maxJsonDepth: number;
  /** Messages per second per connection; 0 turns the limit off. */
  rateLimit: number;
  /** Messages a connection may send in a burst above the rate. */
  rateBurst: number;
  /** Rights of a client whose token has no `rights` claim, or of every client without auth. */
  clientRights: readonly Right[];
}

/** What the session reports; the server turns these into events. */
export interface SessionEvents<C> {
  login(conn: C, uid: Uid): void;
  /** A push, publish or broadcast from a client. */
  message(conn: C, from: Uid, scope: 'uid' | 'group' | 'broadcast', to: string | undefined, data: Data, written: number): void;
  /** A connection was refused something; `code` is the error it was told. */
  refused(conn: C, code: ErrorCode): void;
  /** Handling a connection's message threw (a bug); it is already logged and answered. Must not throw. */
  internalError(conn: C): void;
}

/** What the session asks of the transport that carries the connection. */
export interface SessionHost<C> {
  /** `conn` has logged in: its login timeout ends, and its receive limit becomes `bytes`. */
  loggedIn(conn: C, bytes: number): void;
  /** `conn`'s token expires at `expiresAt` (ms since the epoch; 0: never). */
  expireAt(conn: C, expiresAt: number): void;
}

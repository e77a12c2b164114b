import { utf8ByteLength } from './utf8.js';

/** The most bytes of UTF-8 a close reason may hold: what fits in a close frame. */
export const MAX_CLOSE_REASON_BYTES = 123;

/** Whether `reason` fits a close frame. */
export function fitsCloseReason(reason: string): boolean {
  return utf8ByteLength(reason) <= MAX_CLOSE_REASON_BYTES;
}

/**
 * WebSocket close codes the server sends. The 4000-4499 range means "the client may
 * reconnect"; 4500-4999 means "terminal: do not reconnect without a change". Reasons stay
 * well under the 123-byte limit of a close frame. Documented in docs/errors.md.
 */
export const CloseCode = {
  /** Normal closure. */
  Normal: 1000,
  /** The server is shutting down; reconnect to another node or later. */
  GoingAway: 1001,
  /** The client broke RFC 6455: an unmasked frame, RSV bits, a bad opcode... (raised by the frame parser). */
  ProtocolError: 1002,
  /** The client sent invalid UTF-8 in a text frame (raised by the frame parser). */
  InvalidPayload: 1007,
  /** A message in too many fragments (more than 16,384; raised by the frame parser). */
  PolicyViolation: 1008,
  /**
   * A message exceeded the receive limit (`maxPreLoginMessageSize` before login,
   * `maxMessageSize` after), so it was not buffered (raised by the frame parser).
   */
  MessageTooBig: 1009,
  /**
   * A bug on the server side while handling this connection's message, and the error could
   * not even be answered; other connections are not affected. Reconnecting is fine.
   */
  InternalError: 1011,
  /**
   * The uid's inbox could not be read (its store, Redis, did not answer) for a login's
   * recovery or a resync: reconnect later, and the device recovers then.
   */
  TryAgainLater: 1013,
  /** The send buffer passed `maxBufferedBytes`: the client does not read fast enough. */
  SlowConsumer: 4001,
  /** The connection did not log in (or authenticate) within `loginTimeout`. */
  LoginTimeout: 4002,
  /** The connection's token expired and no new `auth` frame refreshed it in time. */
  TokenExpired: 4003,
  /** The server kicked the uid (hub.kick); terminal. */
  Kicked: 4501,
  /** The token was refused (bad signature, wrong algorithm, no `sub`...); terminal. */
  Unauthorized: 4502,
} as const;

/** One of the close codes of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Whether `code` may travel in a close frame (RFC 6455 section 7.4): the defined 1000-1014
 * but 1004 (reserved) and 1005/1006 (only ever reported locally), and the 3000-4999 ranges
 * for libraries and applications. A peer's frame with any other code is a protocol error.
 */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** Whether a client that was closed with `code` may reconnect on its own. */
export function mayReconnect(code: number): boolean {
  return code < 4500 || code > 4999;
}

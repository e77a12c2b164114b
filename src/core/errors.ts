/**
 * Error codes a client or caller can see. They are stable: clients switch on them, so a
 * code is never renamed or reused. Every code is documented in docs/errors.md, and a test
 * fails when one is missing there.
 */
export const ErrorCode = {
  /** The message does not follow the protocol (no colon, empty uid, binary frame...). */
  BadRequest: 'bad_request',
  /** The message is larger than `maxMessageSize`. */
  TooLarge: 'too_large',
  /** The connection sent faster than its per-connection rate limit allows. */
  RateLimited: 'rate_limited',
  /** A missing, invalid or expired token, or a request before authenticating; on the server API, a missing or wrong key. */
  Unauthorized: 'unauthorized',
  /** The client's rights do not allow the request (send, broadcast, publish, join). */
  Forbidden: 'forbidden',
  /**
   * A cap on state that clients and callers create was reached: `maxGroupsPerUid` or
   * `maxMembersPerGroup` on a join. Server API: 409.
   */
  LimitExceeded: 'limit_exceeded',
  /** Server API: no such route. */
  NotFound: 'not_found',
  /** Server API: the route exists, but not for this method. */
  MethodNotAllowed: 'method_not_allowed',
  /** Server API: the body is not JSON (`content-type` must be application/json). */
  UnsupportedMediaType: 'unsupported_media_type',
  /** Server API: the request (headers or body) did not arrive within its timeout. */
  RequestTimeout: 'request_timeout',
  /** A bug on the server side; bad input never yields it. */
  Internal: 'internal',
  /**
   * The cluster's broker (Redis, the workers' primary) did not answer within the broker
   * timeout, failed, or has too much waiting toward it: nothing was delivered; safe to retry.
   */
  Unavailable: 'unavailable',
} as const;

/** One of the client-visible error codes of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Codes of errors thrown to the embedding program (misuse, bad configuration). Documented
 * in docs/errors.md beside the client codes.
 */
export const ProgramErrorCode = {
  /** An option or configuration value is invalid; the message names which and why. */
  InvalidConfig: 'UIDPUSH_ERR_INVALID_CONFIG',
  /** An argument of a method is invalid, e.g. a cursor that was not made by the hub. */
  InvalidArgument: 'UIDPUSH_ERR_INVALID_ARGUMENT',
  /** A join would pass `maxGroupsPerUid` or `maxMembersPerGroup`; nothing was changed. */
  LimitExceeded: 'UIDPUSH_ERR_LIMIT_EXCEEDED',
  /** `listen()` was called on a server that is already listening or closed. */
  BadState: 'UIDPUSH_ERR_BAD_STATE',
  /** A listener (WebSocket port, server API, inner text port) could not bind its address. */
  Listen: 'UIDPUSH_ERR_LISTEN',
} as const;

/** One of the program error codes of {@link ProgramErrorCode}. */
export type ProgramErrorCode = (typeof ProgramErrorCode)[keyof typeof ProgramErrorCode];

/**
 * The error thrown to the embedding program. `code` is stable and documented; `message`
 * is for people and may change.
 */
export class UidpushError extends Error {
  /** The stable code, see {@link ProgramErrorCode}. */
  readonly code: ProgramErrorCode;

  constructor(code: ProgramErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UidpushError';
    this.code = code;
  }
}

/**
 * A broker failure as the callers of the cluster see it: the broker failed, did not answer
 * within the broker timeout, or refused more work. Client-facing code answers it with
 * {@link ErrorCode.Unavailable} (HTTP 503); any other error is a bug (`internal`).
 */
export class UnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UnavailableError';
  }
}

/** A user id. Every connection that logs in is bound to one; a uid may hold many. */
export type Uid = string;

/**
 * A message to deliver: a string, or a Buffer holding UTF-8 text. It is sent as one
 * WebSocket text frame, exactly as given.
 */
export type Payload = string | Buffer;

/**
 * The minimal logger the server writes to. A pino logger fits; so does any object with
 * these methods.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** A logger that drops everything: the default for an embedded server. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

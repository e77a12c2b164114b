/** A user id. Every connection that logs in is bound to one; a uid may hold many. */
export type Uid = string;

/**
 * A message to deliver: a string, or bytes of UTF-8 text (a Buffer, or any Uint8Array:
 * `core` names no node type, so a browser can share it). It is sent as one WebSocket text
 * frame, exactly as given.
 */
export type Payload = string | Uint8Array;

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * What a push carries. Text (a string, or UTF-8 bytes) reaches seed-protocol clients
 * as the text frame itself and uidpush.v1 clients as a JSON string in `data`; any other
 * JSON value reaches seed clients as its JSON text and v1 clients as the value.
 */
export type Data = Payload | JsonValue;

/** A group name. Membership belongs to the uid: all its connections, now and later. */
export type Group = string;

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

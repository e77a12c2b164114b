import { ErrorCode } from '../core/errors.js';

/**
 * The seed text protocol, from the Workerman example this project grows out of:
 *
 * - the first text message of a connection is its uid; the reply is exactly
 *   `login success, your uid is <uid>`;
 * - then `<uid>:<message>` pushes `<message>` to every connection of that uid, and
 *   `all:<message>` pushes it to every logged-in connection.
 *
 * Unlike the seed, the split is on the first colon only (messages may hold colons), and
 * malformed input is answered with `error: <code> <text>` instead of a PHP warning.
 *
 * This module is pure: it parses bytes and formats replies, and never touches sockets.
 */

/** The uid that addresses every logged-in connection in `all:<message>`. */
export const BROADCAST_UID = 'all';

const COLON = 0x3a;

/** A parsed `<uid>:<message>` or `all:<message>` line. */
export type SeedCommand =
  | { readonly kind: 'push'; readonly uid: string; readonly message: Buffer }
  | { readonly kind: 'broadcast'; readonly message: Buffer }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly text: string };

/**
 * Checks a uid against the rules every uid follows. Returns a reason when the uid is
 * refused, or `undefined` when it is acceptable.
 *
 * A uid is refused when it is empty, longer than `maxBytes` UTF-8 bytes, holds a colon
 * (it could never be addressed: `a:b:hi` routes to `a`), holds a control character, or is
 * `all` (reserved for broadcast, so the seed could never address it either).
 */
export function checkUid(uid: string, maxBytes: number): string | undefined {
  if (uid.length === 0) return 'empty uid';
  if (uid.length > maxBytes || Buffer.byteLength(uid) > maxBytes) {
    return `uid longer than ${maxBytes} bytes`;
  }
  if (uid === BROADCAST_UID) return `uid '${BROADCAST_UID}' is reserved for broadcast`;
  // One pass over the characters: colons and C0/DEL control characters are refused.
  for (let i = 0; i < uid.length; i++) {
    const c = uid.charCodeAt(i);
    if (c === COLON) return "uid must not contain ':'";
    if (c < 0x20 || c === 0x7f) return 'uid must not contain control characters';
  }
  return undefined;
}

/**
 * Parses a message from a logged-in connection. `raw` is the UTF-8 payload of a text
 * frame; the message part is returned as a view of it, never copied or decoded.
 */
export function parseCommand(raw: Buffer, maxUidBytes: number): SeedCommand {
  const colon = raw.indexOf(COLON);
  if (colon === -1) {
    return { kind: 'error', code: ErrorCode.BadRequest, text: 'expected <uid>:<message>' };
  }
  if (colon === 0) {
    return { kind: 'error', code: ErrorCode.BadRequest, text: 'empty uid' };
  }
  if (colon > maxUidBytes) {
    return {
      kind: 'error',
      code: ErrorCode.BadRequest,
      text: `uid longer than ${maxUidBytes} bytes`,
    };
  }
  const uid = raw.toString('utf8', 0, colon);
  const message = raw.subarray(colon + 1);
  if (uid === BROADCAST_UID) return { kind: 'broadcast', message };
  return { kind: 'push', uid, message };
}

/** The reply to a successful login, byte for byte what the seed sends. */
export function loginReply(uid: string): string {
  return `login success, your uid is ${uid}`;
}

/** An error reply line: `error: <code> <text>`. */
export function errorLine(code: ErrorCode, text: string): string {
  return `error: ${code} ${text}`;
}

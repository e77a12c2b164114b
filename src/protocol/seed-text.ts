import { ErrorCode } from '../core/errors.js';
import { BROADCAST_UID, checkUid } from '../core/names.js';

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

// The name rules live in core, shared by every entry point; re-exported for the codec's users.
export { BROADCAST_UID, checkUid } from '../core/names.js';

const COLON = 0x3a;

/** A parsed `<uid>:<message>` or `all:<message>` line. */
export type SeedCommand =
  | { readonly kind: 'push'; readonly uid: string; readonly message: Buffer }
  | { readonly kind: 'broadcast'; readonly message: Buffer }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly text: string };

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
  // A target no login could take (control characters, bidi overrides...) is a mistake
  // worth telling, not an offline uid to drop silently.
  const refusal = checkUid(uid, maxUidBytes);
  if (refusal !== undefined) return { kind: 'error', code: ErrorCode.BadRequest, text: refusal };
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

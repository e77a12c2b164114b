import type { Payload } from '../core/types.js';
import { isValidCloseCode, MAX_CLOSE_REASON_BYTES } from '../core/close-codes.js';

/**
 * Builds a complete, unmasked, final WebSocket text frame (RFC 6455 section 5.2) in one
 * contiguous Buffer, so a fan-out writes the same bytes to every socket with a single
 * write() each. ws's own Sender.frame() returns header and payload apart and costs a
 * cork/writev per recipient; with per-message deflate off the bytes on the wire are
 * identical.
 *
 * A string payload is encoded straight into the frame, with no intermediate Buffer.
 */
export function encodeTextFrame(payload: Payload): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (length < 126) {
    frame[1] = length;
  } else if (length < 0x10000) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    // Frames are capped far below 2^53, so the high word is the quotient.
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  if (typeof payload === 'string') frame.write(payload, headerLength, 'utf8');
  else frame.set(payload, headerLength);
  return frame;
}

/** An empty ping frame; the same bytes serve every heartbeat. */
export const PING_FRAME: Buffer = Buffer.from([0x89, 0x00]);

/** An empty close frame: the answer to a peer's close frame that carried no code. */
const EMPTY_CLOSE_FRAME: Buffer = Buffer.from([0x88, 0x00]);

/**
 * Builds an unmasked close frame. Throws as ws's Sender does for a code a close frame may
 * not carry (TypeError) or a reason over 123 bytes (RangeError), so a caller's bad close
 * is refused before the connection changes state.
 *
 * @param code - the close code; undefined: an empty close frame.
 * @param reason - UTF-8 text or bytes, at most 123 bytes.
 */
export function encodeCloseFrame(code?: number, reason?: string | Buffer): Buffer {
  if (code === undefined) return EMPTY_CLOSE_FRAME;
  if (!isValidCloseCode(code)) throw new TypeError('First argument must be a valid error code number');
  const length = reason === undefined ? 0 : typeof reason === 'string' ? Buffer.byteLength(reason) : reason.length;
  if (length > MAX_CLOSE_REASON_BYTES) throw new RangeError('The message must not be greater than 123 bytes');
  const frame = Buffer.allocUnsafe(4 + length);
  frame[0] = 0x88; // FIN + opcode 8 (close)
  frame[1] = 2 + length;
  frame.writeUInt16BE(code, 2);
  if (typeof reason === 'string') frame.write(reason, 4, 'utf8');
  else if (reason !== undefined) frame.set(reason, 4);
  return frame;
}

/** Builds an unmasked pong frame echoing a ping's payload (at most 125 bytes, as any control frame). */
export function encodePongFrame(payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = 0x8a; // FIN + opcode 10 (pong)
  frame[1] = payload.length;
  frame.set(payload, 2);
  return frame;
}

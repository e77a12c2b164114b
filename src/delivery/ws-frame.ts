import type { Payload } from '../core/types.js';

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

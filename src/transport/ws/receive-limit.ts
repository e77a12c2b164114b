import type { WebSocket } from 'ws';

/**
 * ws has one `maxPayload` for a whole server; uidpush needs a small one before login and
 * `maxMessageSize` after. ws's Receiver reads its `_maxPayload` at every frame header
 * (`haveLength`, before it buffers a byte of the payload), so changing it on one
 * connection's receiver changes that connection's limit from its next frame on.
 *
 * This is the one place that touches that private field; test/unit/receive-limit.test.ts
 * fails if a ws release renames or moves it.
 *
 * @returns whether the limit could be set; false means this ws has no such field, and the
 *   connection keeps the server-wide limit.
 */
export function setReceiveLimit(ws: WebSocket, bytes: number): boolean {
  // null until ws has given the WebSocket its socket.
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } | null })._receiver;
  if (receiver === undefined || receiver === null || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { JSON_V1_SUBPROTOCOL } from '../../protocol/codec.js';

/**
 * The checks and answers of a WebSocket handshake before ws reads it: the subprotocol, the
 * page origin, the handshake token, and the HTTP refusals (text/plain, like every refusal
 * of this port).
 */

/** How long a client refused at the upgrade is told to wait, in seconds. */
const RETRY_AFTER_S = 1;

/** The body of the 400 to a handshake that offers subprotocols, none of them ours. */
export const UNSUPPORTED_SUBPROTOCOL = `uidpush: no supported subprotocol offered; offer ${JSON_V1_SUBPROTOCOL} (JSON frames), or none (the seed text protocol)`;

/**
 * Whether a handshake may go on as far as subprotocols go: it offers none (the seed
 * protocol), or ours among others. A client that offers only others must, by RFC 6455
 * 4.1, fail a 101 that names none of them (browsers do, as a bare 1006), so it is told
 * 400 and why instead; names are compared exactly, as the RFC's tokens are.
 */
export function offersOurSubprotocol(header: string | undefined): boolean {
  if (header === undefined) return true;
  return header.split(',').some((name) => name.trim() === JSON_V1_SUBPROTOCOL);
}

/** The page origin a browser sent (`Sec-WebSocket-Origin` in protocol version 8). */
export function handshakeOrigin(req: IncomingMessage): string | undefined {
  const origin = req.headers.origin ?? req.headers['sec-websocket-origin'];
  // Repeated headers arrive joined or as a list: no origin matches them.
  return Array.isArray(origin) ? origin.join(', ') : origin;
}

/** A token offered at the handshake: `?token=` or `Authorization: Bearer`. */
export function handshakeToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] !== undefined) return match[1];
  }
  const query = req.url?.indexOf('?') ?? -1;
  if (query === -1 || req.url === undefined) return undefined;
  return new URLSearchParams(req.url.slice(query + 1)).get('token') ?? undefined;
}

const STATUS_TEXT = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  503: 'Service Unavailable',
} as const;

/**
 * Answers an upgrade with an HTTP error and closes the socket: ended, then destroyed once
 * the answer is flushed (as ws's own refusals do), so a peer that never closes its side
 * cannot keep it half-open.
 */
export function refuseUpgrade(socket: Duplex, status: keyof typeof STATUS_TEXT, text: string): void {
  socket.on('error', destroySocket);
  socket.once('finish', destroySocket);
  const body = `${text}\n`;
  // A refused origin or subprotocol will not become acceptable by waiting; a cap or a rate might.
  const retry = status === 429 || status === 503 ? `Retry-After: ${RETRY_AFTER_S}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n${retry}Connection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/**
 * Answers an error node raises before a request reaches the port's handlers: headers over
 * node's limit (16 KiB by default), a handshake not complete within `loginTimeout`, or
 * anything its HTTP parser refuses.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // A TLS error (the handshake timed out or failed) comes before any HTTP: an answer would
  // wait for a handshake that never ends, and hold the socket with it.
  const tls = error.code?.startsWith('ERR_TLS_') === true || error.code?.startsWith('ERR_SSL_') === true;
  if (error.code === 'ECONNRESET' || tls || !socket.writable) {
    socket.destroy();
    return;
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') refuseUpgrade(socket, 431, 'uidpush: request headers too large');
  else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') refuseUpgrade(socket, 408, 'uidpush: handshake not received within loginTimeout');
  else refuseUpgrade(socket, 400, 'uidpush: malformed HTTP request');
}
function destroySocket(this: Duplex): void {
  this.destroy();
}

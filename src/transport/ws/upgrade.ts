import { hash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { JSON_V1_SUBPROTOCOL, negotiate } from '../../protocol/codec.js';
import { TOKEN_CHARS } from './request-head.js';

/**
 * The checks and answers of a WebSocket handshake: the subprotocol, the page origin, the
 * handshake token, the RFC 6455 request checks and the 101, and the HTTP refusals
 * (text/plain, like every refusal of this port).
 */

/**
 * An upgrade request as the checks read it: node:http's `IncomingMessage`, or a head the
 * handshake reader read itself (names lower-cased, as node's).
 */
export interface HandshakeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** A header's value; a repeated one node gives as a list (only `set-cookie`) is joined. */
function header(req: HandshakeRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The body of the 408 to a handshake not received within the login timeout. */
export const HANDSHAKE_TIMEOUT_TEXT = 'uidpush: handshake not received within loginTimeout';
/** The body of the 400 to a request node:http cannot parse, or one cut short by the peer's FIN. */
export const MALFORMED_REQUEST_TEXT = 'uidpush: malformed HTTP request';

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
export function offersOurSubprotocol(req: HandshakeRequest): boolean {
  const offered = header(req, 'sec-websocket-protocol');
  if (offered === undefined) return true;
  return offered.split(',').some((name) => name.trim() === JSON_V1_SUBPROTOCOL);
}

/** The page origin a browser sent (`Sec-WebSocket-Origin` in protocol version 8). */
export function handshakeOrigin(req: HandshakeRequest): string | undefined {
  // Repeated headers arrive joined: no origin matches them.
  return header(req, 'origin') ?? header(req, 'sec-websocket-origin');
}

/** A token offered at the handshake: `?token=` or `Authorization: Bearer`. */
export function handshakeToken(req: HandshakeRequest): string | undefined {
  const authorization = header(req, 'authorization');
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match?.[1] !== undefined) return match[1];
  }
  const query = req.url?.indexOf('?') ?? -1;
  if (query === -1 || req.url === undefined) return undefined;
  return new URLSearchParams(req.url.slice(query + 1)).get('token') ?? undefined;
}

/** The GUID RFC 6455 section 1.3 appends to the client's key for the accept hash. */
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A base64 encoding of 16 bytes, as ws checks it. */
const KEY_PATTERN = /^[+/0-9A-Za-z]{22}==$/;

/** A handshake refused by {@link checkHandshake}: the status, the body, any header to add. */
export interface HandshakeRefusal {
  status: 400 | 405;
  text: string;
  headers?: string;
}

/** A handshake {@link checkHandshake} accepts: the key to answer and the subprotocol to name, if any. */
export interface HandshakeAccepted {
  key: string;
  subprotocol: string | undefined;
}

/**
 * ws's checks of an upgrade request, in its order and with its answers: GET, an
 * `Upgrade: websocket`, a well-formed key, version 13 (or 8), a well-formed subprotocol
 * list. The subprotocol is the one {@link negotiate} picks among those offered.
 */
export function checkHandshake(req: HandshakeRequest): HandshakeAccepted | HandshakeRefusal {
  if (req.method !== 'GET') return { status: 405, text: 'Invalid HTTP method' };
  const upgrade = header(req, 'upgrade');
  if (upgrade?.toLowerCase() !== 'websocket') return { status: 400, text: 'Invalid Upgrade header' };
  const key = header(req, 'sec-websocket-key');
  if (key === undefined || !KEY_PATTERN.test(key)) return { status: 400, text: 'Missing or invalid Sec-WebSocket-Key header' };
  const version = Number(header(req, 'sec-websocket-version'));
  if (version !== 13 && version !== 8) {
    return { status: 400, text: 'Missing or invalid Sec-WebSocket-Version header', headers: 'Sec-WebSocket-Version: 13, 8\r\n' };
  }
  const protocols = header(req, 'sec-websocket-protocol');
  if (protocols === undefined) return { key, subprotocol: undefined };
  const offered = parseSubprotocols(protocols);
  if (offered === undefined) return { status: 400, text: 'Invalid Sec-WebSocket-Protocol header' };
  return { key, subprotocol: negotiate(offered).subprotocol };
}

/** The 101 that completes a handshake {@link checkHandshake} accepted. */
export function switchingProtocols(accepted: HandshakeAccepted): string {
  // One-shot: no Hash object per handshake (node >= 20.12).
  const digest = hash('sha1', accepted.key + GUID, 'base64');
  const protocol = accepted.subprotocol === undefined ? '' : `Sec-WebSocket-Protocol: ${accepted.subprotocol}\r\n`;
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${digest}\r\n${protocol}\r\n`;
}

/**
 * A `Sec-WebSocket-Protocol` list as ws parses it: tokens separated by commas, with
 * optional spaces or tabs around them; undefined for an empty element, another character,
 * or a name given twice.
 */
export function parseSubprotocols(header: string): Set<string> | undefined {
  const names = new Set<string>();
  let start = -1;
  let end = -1;
  let i = 0;
  for (; i < header.length; i++) {
    const code = header.charCodeAt(i);
    if (end === -1 && TOKEN_CHARS[code] === 1) {
      if (start === -1) start = i;
    } else if (i !== 0 && (code === 0x20 || code === 0x09)) {
      if (end === -1 && start !== -1) end = i;
    } else if (code === 0x2c) {
      if (start === -1) return undefined;
      if (end === -1) end = i;
      const name = header.slice(start, end);
      if (names.has(name)) return undefined;
      names.add(name);
      start = end = -1;
    } else {
      return undefined;
    }
  }
  if (start === -1 || end !== -1) return undefined;
  const name = header.slice(start, i);
  if (names.has(name)) return undefined;
  names.add(name);
  return names;
}

const STATUS_TEXT = {
  400: 'Bad Request',
  403: 'Forbidden',
  405: 'Method Not Allowed',
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
export function refuseUpgrade(socket: Duplex, status: keyof typeof STATUS_TEXT, text: string, headers = ''): void {
  socket.on('error', destroySocket);
  socket.once('finish', destroySocket);
  const body = `${text}\n`;
  // A refused origin or subprotocol will not become acceptable by waiting; a cap or a rate might.
  const retry = status === 429 || status === 503 ? `Retry-After: ${RETRY_AFTER_S}\r\n` : '';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\n${retry}${headers}Connection: close\r\n` +
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
  else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') refuseUpgrade(socket, 408, HANDSHAKE_TIMEOUT_TEXT);
  else refuseUpgrade(socket, 400, MALFORMED_REQUEST_TEXT);
}
function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * The head of an HTTP/1.1 upgrade request, read without node:http: the common shape of a
 * WebSocket handshake only. Anything else is left to node:http (see `HandshakeReader`),
 * so what this reads, node would read the same way, and what it refuses to read, node
 * answers as it always has.
 */

/**
 * The token characters of RFC 7230 section 3.2.6: 1 where a header name or a subprotocol
 * name may have the character (ASCII only).
 */
// prettier-ignore
export const TOKEN_CHARS = [
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
  0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
];

/**
 * The longest head read here. Longer ones (rare: a handshake is a few hundred bytes) go
 * to node:http, whose `maxHeaderSize` (16 KiB) and 431 answer stay the limit.
 */
export const MAX_HEAD_BYTES = 8192;
/** More header lines than a handshake has; node keeps at most 2,000 and drops the rest. */
const MAX_HEADERS = 64;

/** A request head as the handshake checks read it: names lower-cased, values trimmed. */
export interface RequestHead {
  method: 'GET';
  url: string;
  headers: Record<string, string>;
}

/** A head read whole: the request, and where the bytes after it (the first frames) start. */
export interface ReadHead {
  request: RequestHead;
  end: number;
}

/** More bytes are needed before the head can be read. */
export const PARTIAL = 'partial';

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HT = 0x09;
const COLON = 0x3a;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const REQUEST_START = Buffer.from('GET ', 'latin1');
const VERSION = ' HTTP/1.1\r\n';

/**
 * Reads the head at the start of `data`: a `GET` with an absolute path or any other
 * visible-ASCII target, HTTP/1.1, and header lines of a token, a colon and a value of
 * visible ASCII with inner spaces. The request must name a `Host`, an `Upgrade` and
 * `Connection: upgrade`, and have no body (`Content-Length`, `Transfer-Encoding`).
 *
 * @returns the head, {@link PARTIAL} while it may still complete, or undefined for
 *   anything else (another method or version, a repeated header, obs-fold, non-ASCII,
 *   a stray CR or LF, whitespace before a colon or at a value's end, a head over
 *   {@link MAX_HEAD_BYTES}): those are node:http's to read or refuse.
 */
export function readRequestHead(data: Buffer): ReadHead | typeof PARTIAL | undefined {
  const end = data.indexOf(HEAD_END);
  if (end === -1) {
    if (data.length >= MAX_HEAD_BYTES) return undefined;
    // A prefix of anything but "GET " will not become one of ours.
    const start = Math.min(data.length, REQUEST_START.length);
    return data.compare(REQUEST_START, 0, start, 0, start) === 0 ? PARTIAL : undefined;
  }
  if (end + HEAD_END.length > MAX_HEAD_BYTES) return undefined;
  if (data.compare(REQUEST_START, 0, REQUEST_START.length, 0, REQUEST_START.length) !== 0) return undefined;
  // One string for the whole head, cut with slice: a toString per name and value cost
  // more than the rest of the reading together.
  const text = data.toString('latin1', 0, end + 2);
  let i = REQUEST_START.length;
  const urlStart = i;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === SP) break;
    if (c < 0x21 || c > 0x7e) return undefined;
  }
  if (i === urlStart || !text.startsWith(VERSION, i)) return undefined;
  const url = text.slice(urlStart, i);
  i += VERSION.length;
  // No prototype: a header named __proto__ is a header like any other.
  const headers = Object.create(null) as Record<string, string>;
  let count = 0;
  // Each line ends in CRLF; the last one's is at `end`, and the blank line follows it.
  while (i < end + 2) {
    if (++count > MAX_HEADERS) return undefined;
    const nameStart = i;
    while (TOKEN_CHARS[text.charCodeAt(i)] === 1) i++;
    if (i === nameStart || text.charCodeAt(i) !== COLON) return undefined;
    const name = text.slice(nameStart, i).toLowerCase();
    i++;
    let c = text.charCodeAt(i);
    while (c === SP || c === HT) c = text.charCodeAt(++i);
    const valueStart = i;
    let valueEnd = i;
    // The text ends in CRLF, so this stops at a CR at the latest there.
    for (; c !== CR; c = text.charCodeAt(++i)) {
      if (c !== SP && c !== HT) {
        if (c < 0x21 || c > 0x7e) return undefined;
        valueEnd = i + 1;
      }
    }
    // Trailing whitespace and a CR without its LF are node's to judge.
    if (valueEnd !== i || text.charCodeAt(i + 1) !== LF || name in headers) return undefined;
    headers[name] = text.slice(valueStart, valueEnd);
    i += 2;
  }
  if (headers.host === undefined || headers.upgrade === undefined) return undefined;
  if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) return undefined;
  if (headers.connection === undefined || !UPGRADE_TOKEN.test(headers.connection)) return undefined;
  return { request: { method: 'GET', url, headers }, end: end + HEAD_END.length };
}

/** `upgrade` as one item of a comma-separated list, in any case, with optional whitespace. */
const UPGRADE_TOKEN = /(?:^|,)[ \t]*upgrade[ \t]*(?:,|$)/i;

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_HEAD_BYTES, PARTIAL, readRequestHead } from '../../src/transport/ws/request-head.js';

/** What Chromium sends to open a WebSocket, in its order and case. */
const CHROMIUM = [
  'GET /?token=abc.def HTTP/1.1',
  'Host: 127.0.0.1:1234',
  'Connection: Upgrade',
  'Pragma: no-cache',
  'Cache-Control: no-cache',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
  'Upgrade: websocket',
  'Origin: http://127.0.0.1:1234',
  'Sec-WebSocket-Version: 13',
  'Accept-Encoding: gzip, deflate, br',
  'Accept-Language: en-US,en;q=0.9',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
  'Sec-WebSocket-Protocol: uidpush.v1',
];

const head = (lines: readonly string[]): Buffer => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

/** CHROMIUM with line `at` replaced by `line` (or removed, for undefined). */
function variant(at: number, line: string | undefined): string[] {
  const lines = [...CHROMIUM];
  if (line === undefined) lines.splice(at, 1);
  else lines[at] = line;
  return lines;
}

describe('reading an upgrade request head', () => {
  it('reads a browser handshake: method, target, lower-cased names, values as sent, and where the frames start', () => {
    const frames = Buffer.from([0x81, 0x80, 1, 2, 3, 4]);
    const read = readRequestHead(Buffer.concat([head(CHROMIUM), frames]));
    expect(read).not.toBe(PARTIAL);
    if (read === PARTIAL || read === undefined) return;
    expect(read.request.method).toBe('GET');
    expect(read.request.url).toBe('/?token=abc.def');
    expect(read.request.headers).toMatchObject({
      host: '127.0.0.1:1234',
      connection: 'Upgrade',
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
      'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits',
      'sec-websocket-protocol': 'uidpush.v1',
    });
    expect(Object.keys(read.request.headers)).toHaveLength(CHROMIUM.length - 1);
    expect(read.end).toBe(head(CHROMIUM).length);
  });

  it('trims the spaces and tabs after the colon, keeps inner ones, and reads an empty value', () => {
    const read = readRequestHead(head([...CHROMIUM, 'X-A:\t  two  words', 'X-Empty:']));
    expect(read).toMatchObject({ request: { headers: { 'x-a': 'two  words', 'x-empty': '' } } });
  });

  it('finds Connection: upgrade among other tokens, in any case', () => {
    expect(readRequestHead(head(variant(2, 'connection: keep-alive, UPGRADE')))).toMatchObject({ request: { method: 'GET' } });
  });

  it('keeps a header named __proto__ as a header, not a prototype', () => {
    const read = readRequestHead(head([...CHROMIUM, '__proto__: x']));
    expect(
      read === undefined || read === PARTIAL ? undefined : Object.getOwnPropertyDescriptor(read.request.headers, '__proto__')?.value,
    ).toBe('x');
  });

  it('asks for more on every strict prefix of a head, wherever it is cut', () => {
    const whole = head(CHROMIUM);
    for (let cut = 0; cut < whole.length; cut++) expect(readRequestHead(whole.subarray(0, cut))).toBe(PARTIAL);
  });

  it.each([
    ['another method', variant(0, 'POST / HTTP/1.1')],
    ['HTTP/1.0', variant(0, 'GET / HTTP/1.0')],
    ['an empty target', variant(0, 'GET  HTTP/1.1')],
    ['a control character in the target', variant(0, 'GET /\x01 HTTP/1.1')],
    ['a repeated header', [...CHROMIUM, 'Sec-WebSocket-Protocol: other']],
    ['a folded line (obs-fold)', [...CHROMIUM, ' folded']],
    ['a space before the colon', [...CHROMIUM, 'X-A : b']],
    ['trailing whitespace in a value', [...CHROMIUM, 'X-A: b ']],
    ['a byte over 0x7e in a value', [...CHROMIUM, 'X-A: caf\xe9']],
    ['a line without a colon', [...CHROMIUM, 'no colon']],
    ['no Host', variant(1, undefined)],
    ['no Upgrade', variant(6, undefined)],
    ['Connection without upgrade', variant(2, 'Connection: keep-alive')],
    ['a Content-Length', [...CHROMIUM, 'Content-Length: 5']],
    ['a Transfer-Encoding', [...CHROMIUM, 'Transfer-Encoding: chunked']],
    ['more than 64 header lines', [...CHROMIUM, ...Array.from({ length: 60 }, (_, i) => `X-${String(i)}: v`)]],
  ])('leaves %s to node:http', (_name, lines) => {
    expect(readRequestHead(head(lines))).toBeUndefined();
  });

  it('leaves a bare LF and a CR without LF to node:http', () => {
    const text = head(CHROMIUM).toString('latin1');
    expect(readRequestHead(Buffer.from(text.replace('Pragma: no-cache\r\n', 'Pragma: no-cache\n'), 'latin1'))).toBeUndefined();
    expect(readRequestHead(Buffer.from(text.replace('Pragma: no-cache\r\n', 'Pragma: no\rcache\r\n'), 'latin1'))).toBeUndefined();
  });

  it('leaves a head over MAX_HEAD_BYTES to node:http, whole or not yet whole', () => {
    const big = [...CHROMIUM, `X-Big: ${'a'.repeat(MAX_HEAD_BYTES)}`];
    expect(readRequestHead(head(big))).toBeUndefined();
    expect(readRequestHead(head(big).subarray(0, MAX_HEAD_BYTES))).toBeUndefined();
  });

  it('stops waiting as soon as the start is not "GET "', () => {
    expect(readRequestHead(Buffer.from('PO'))).toBeUndefined();
    expect(readRequestHead(Buffer.from('GE'))).toBe(PARTIAL);
  });

  it('never throws on random bytes, and reads only heads that end in CRLF CRLF', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, prefixed) => {
        const data = Buffer.concat([prefixed ? Buffer.from('GET / HTTP/1.1\r\n') : Buffer.alloc(0), bytes]);
        const read = readRequestHead(data);
        if (read !== undefined && read !== PARTIAL) {
          expect(data.subarray(read.end - 4, read.end).toString('latin1')).toBe('\r\n\r\n');
        }
      }),
      { numRuns: 2000 },
    );
  });
});

/**
 * A minimal WebSocket client on a bare `net.Socket`, for load generation only: the
 * handshake written as one string, client frames masked with one fixed key, server frames
 * parsed in place, pings answered. It does what a C load generator does, so the client
 * processes spend little of the box's two cores and the figures say more about the server
 * than about ws's client (which costs several times more per connection and per message).
 *
 * Not a conforming client: it trusts the server's 101 (no Sec-WebSocket-Accept check),
 * never sends fragments, and closes by destroying the socket.
 */
import { connect, type Socket } from 'node:net';

/** The key every handshake sends: a server does not care whether keys repeat. */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** What a raw client reports. */
export interface RawHandlers {
  /** The 101 arrived: frames may be sent. */
  open(client: RawClient): void;
  /** A text or binary message from the server (a view into the read buffer: copy to keep). */
  message(client: RawClient, data: Buffer): void;
  /** The socket closed, or failed; `error` is set when it failed before or after the 101. */
  close(client: RawClient, error: string | undefined): void;
}

/** One client connection. */
export class RawClient {
  readonly socket: Socket;
  readonly handlers: RawHandlers;
  /** Free for the caller: the uid it logs in with, say. */
  tag = '';
  #upgraded = false;
  #pending: Buffer | undefined = undefined;
  #closed = false;

  readonly #path: string;

  constructor(url: URL, localAddress: string | undefined, handlers: RawHandlers) {
    this.handlers = handlers;
    this.#path = `${url.pathname}${url.search}`;
    const host = url.hostname;
    const port = Number(url.port);
    this.socket = connect({ host, port, ...(localAddress !== undefined ? { localAddress } : {}), noDelay: true });
    this.socket.on('connect', onConnect);
    this.socket.on('data', onData);
    this.socket.on('error', onError);
    this.socket.on('close', onClose);
    (this.socket as SocketWithClient)[CLIENT] = this;
  }

  /** Sends one masked text frame. */
  send(text: string): void {
    this.socket.write(maskedTextFrame(text));
  }

  /** Sends several masked text frames in one write. */
  sendMany(texts: string[]): void {
    this.socket.write(Buffer.concat(texts.map(maskedTextFrame)));
  }

  /** Drops the connection at once, like a killed process or a lost link. */
  destroy(): void {
    this.socket.destroy();
  }

  /** @internal */
  onConnect(): void {
    this.socket.write(
      `GET ${this.#path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  }

  /** @internal */
  onData(chunk: Buffer): void {
    let buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = undefined;
    if (!this.#upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) {
        this.#pending = buf;
        return;
      }
      if (!buf.toString('latin1', 0, 12).startsWith('HTTP/1.1 101')) {
        this.#fail(`handshake refused: ${buf.toString('latin1', 0, Math.min(end, 80))}`);
        return;
      }
      this.#upgraded = true;
      buf = buf.subarray(end + 4);
      this.handlers.open(this);
    }
    let at = 0;
    while (buf.length - at >= 2) {
      const b0 = buf[at] as number;
      let len = (buf[at + 1] as number) & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = buf.readUInt32BE(at + 2) * 0x100000000 + buf.readUInt32BE(at + 6);
        head = 10;
      }
      if (buf.length - at < head + len) break;
      const payload = buf.subarray(at + head, at + head + len);
      at += head + len;
      const opcode = b0 & 0x0f;
      if (opcode === 1 || opcode === 2) this.handlers.message(this, payload);
      else if (opcode === 9) this.socket.write(control(0x8a, payload));
      else if (opcode === 8) {
        this.socket.destroy();
        return;
      }
    }
    if (at < buf.length) this.#pending = Buffer.from(buf.subarray(at));
  }

  /** @internal */
  onClose(error: string | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.handlers.close(this, error ?? (this.#upgraded ? undefined : 'closed before the 101'));
  }

  #fail(error: string): void {
    this.onClose(error);
    this.socket.destroy();
  }
}

const CLIENT = Symbol('raw client');
type SocketWithClient = Socket & { [CLIENT]?: RawClient };

// Shared listeners: a client allocates no closures.
function onConnect(this: SocketWithClient): void {
  this[CLIENT]?.onConnect();
}
function onData(this: SocketWithClient, chunk: Buffer): void {
  this[CLIENT]?.onData(chunk);
}
function onError(this: SocketWithClient, err: Error): void {
  this[CLIENT]?.onClose(err.message);
}
function onClose(this: SocketWithClient): void {
  this[CLIENT]?.onClose(undefined);
}

/** One masked, final client text frame of `text`, with the fixed mask. */
export function maskedTextFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const head = length < 126 ? 6 : length < 0x10000 ? 8 : 14;
  const out = Buffer.allocUnsafe(head + length);
  out[0] = 0x81;
  if (length < 126) out[1] = 0x80 | length;
  else if (length < 0x10000) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(length, 6);
  }
  MASK.copy(out, head - 4);
  out.write(text, head, 'utf8');
  for (let i = 0; i < length; i++) out[head + i] = (out[head + i] as number) ^ (MASK[i & 3] as number);
  return out;
}

function control(first: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(6 + payload.length);
  out[0] = first;
  out[1] = 0x80 | payload.length;
  MASK.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = (payload[i] as number) ^ (MASK[i & 3] as number);
  return out;
}

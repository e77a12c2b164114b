import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCode } from '../core/errors.js';
import { checkUid } from '../core/names.js';
import type { PushService } from '../core/service.js';
import type { Logger } from '../core/types.js';

/** Options of the inner text port. */
export interface InnerTextOptions {
  service: PushService;
  /** Longest line, in bytes; a longer one is answered `error too_large` and skipped. */
  maxLineBytes: number;
  /** Longest uid, in UTF-8 bytes. */
  maxUidLength: number;
  logger: Logger;
}

const NEWLINE = 0x0a;
/** Stop reading from a client that does not read its answers past this many bytes. */
const MAX_PENDING_REPLIES = 1024 * 1024;

/**
 * The inner text port of the Workerman documentation ("push in other projects"): a TCP
 * port on loopback that takes newline-delimited JSON objects `{"uid":"u1", ...}`. Each line
 * pushes the line itself (the object's JSON text) to that uid and is answered `ok` if the
 * uid was online or `fail` if not. A malformed line is answered `error <code>` and the
 * connection stays usable; blank lines are ignored.
 */
export class InnerTextServer {
  readonly #server: Server;
  readonly #options: InnerTextOptions;
  readonly #sockets = new Set<Socket>();

  constructor(options: InnerTextOptions) {
    this.#options = options;
    this.#server = createServer((socket) => {
      this.#accept(socket);
    });
  }

  /** Listens on 127.0.0.1 (never another address) and resolves with the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: '127.0.0.1', port }, () => {
        this.#server.off('error', reject);
        const address = this.#server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => {
        resolve();
      });
    });
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let discarding = false;
    // Answers go out in line order even when a cluster answers asynchronously.
    let answered: Promise<void> = Promise.resolve();
    const answer = (reply: string | Promise<string>): void => {
      if (typeof reply === 'string' && answered === settled) {
        socket.write(reply);
        return;
      }
      const previous = answered;
      answered = previous.then(async () => {
        const text = await reply;
        if (!socket.destroyed) socket.write(text);
      });
    };
    const settled = answered;
    socket.on('data', (chunk: Buffer) => {
      let start = 0;
      let newline = chunk.indexOf(NEWLINE, start);
      while (newline !== -1) {
        const piece = chunk.subarray(start, newline);
        if (discarding) {
          discarding = false;
        } else if (pendingBytes + piece.length > this.#options.maxLineBytes) {
          answer(`error ${ErrorCode.TooLarge}\n`);
        } else {
          const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
          const reply = this.#handle(line);
          if (reply !== undefined) answer(reply);
        }
        pending = [];
        pendingBytes = 0;
        start = newline + 1;
        newline = chunk.indexOf(NEWLINE, start);
      }
      const rest = chunk.subarray(start);
      if (rest.length > 0 && !discarding) {
        if (pendingBytes + rest.length > this.#options.maxLineBytes) {
          // Answer now and skip the rest of this line, without holding it.
          answer(`error ${ErrorCode.TooLarge}\n`);
          pending = [];
          pendingBytes = 0;
          discarding = true;
        } else {
          pending.push(rest);
          pendingBytes += rest.length;
        }
      }
      if (socket.writableLength > MAX_PENDING_REPLIES && !socket.isPaused()) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
    socket.on('error', (err) => {
      this.#options.logger.debug({ err }, 'inner text port: connection error');
    });
    socket.on('close', () => {
      this.#sockets.delete(socket);
    });
  }

  /** The answer to one line, or undefined for a blank line. */
  #handle(raw: Buffer): string | Promise<string> | undefined {
    const text = raw.toString('utf8').trim();
    if (text.length === 0) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return `error ${ErrorCode.BadRequest}\n`;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return `error ${ErrorCode.BadRequest}\n`;
    }
    const uid = (value as { uid?: unknown }).uid;
    if (typeof uid !== 'string' || checkUid(uid, this.#options.maxUidLength) !== undefined) {
      return `error ${ErrorCode.BadRequest}\n`;
    }
    const result = this.#options.service.pushToUids([uid], text);
    const reply = (r: { online: number }): string => (r.online > 0 ? 'ok\n' : 'fail\n');
    return result instanceof Promise ? result.then(reply, () => `error ${ErrorCode.Internal}\n`) : reply(result);
  }
}

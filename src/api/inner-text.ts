import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCode, UnavailableError } from '../core/errors.js';
import { exceedsJsonDepth } from '../core/json-depth.js';
import { checkUid } from '../core/names.js';
import type { PushService } from '../core/service.js';
import type { Logger } from '../core/types.js';
import { capConnections, sweepInterval } from './connection-limits.js';

/** Options of the inner text port. */
export interface InnerTextOptions {
  service: PushService;
  /** Longest line, in bytes; a longer one is answered `error too_large` and skipped. */
  maxLineBytes: number;
  /** Longest uid, in UTF-8 bytes. */
  maxUidLength: number;
  /** Most levels of nesting in a line, its own object included; deeper: `error bad_request`. */
  maxJsonDepth: number;
  /** Called when handling a line threw (a bug), after it is logged and answered. */
  onInternalError?: () => void;
  /** A connection that completes no line for this long, in ms, is closed. */
  idleTimeout: number;
  /** Most open connections; the ones over it are closed as soon as they are accepted. */
  maxConnections: number;
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
 * connection stays usable; blank lines are ignored. A connection that completes no line for
 * `idleTimeout` (idle, or holding a half line that never ends) is closed.
 */
export class InnerTextServer {
  readonly #server: Server;
  readonly #options: InnerTextOptions;
  /** Each open connection, with when it last completed a line (or opened). */
  readonly #sockets = new Map<Socket, number>();
  #sweep: NodeJS.Timeout | undefined;

  constructor(options: InnerTextOptions) {
    this.#options = options;
    this.#server = createServer((socket) => {
      this.#accept(socket);
    });
    capConnections(this.#server, options.maxConnections, options.logger, 'inner text port');
  }

  /** Listens on 127.0.0.1 (never another address) and resolves with the port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: '127.0.0.1', port }, () => {
        this.#server.off('error', reject);
        // One sweep for every connection rather than a timer each (socket.setTimeout).
        this.#sweep = setInterval(() => {
          this.#closeIdle();
        }, sweepInterval(this.#options.idleTimeout));
        this.#sweep.unref();
        const address = this.#server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    clearInterval(this.#sweep);
    for (const socket of this.#sockets.keys()) socket.destroy();
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

  /** Destroys the connections that completed no line for `idleTimeout`. */
  #closeIdle(): void {
    const before = Date.now() - this.#options.idleTimeout;
    for (const [socket, at] of this.#sockets) if (at <= before) socket.destroy();
  }

  #accept(socket: Socket): void {
    this.#sockets.set(socket, Date.now());
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
          const reply = this.#guarded(line);
          if (reply !== undefined) answer(reply);
        }
        pending = [];
        pendingBytes = 0;
        start = newline + 1;
        newline = chunk.indexOf(NEWLINE, start);
      }
      if (start > 0) this.#sockets.set(socket, Date.now());
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

  /**
   * {@link #handle} behind the last-resort guard: a throw inside a socket's data listener
   * would end the process, so it is logged, counted and answered `error internal`, and
   * the next line is handled as usual.
   */
  #guarded(raw: Buffer): string | Promise<string> | undefined {
    try {
      return this.#handle(raw);
    } catch (err) {
      this.#options.logger.error({ err, bytes: raw.length }, 'inner text port: handling a line failed; answered internal');
      this.#options.onInternalError?.();
      return `error ${ErrorCode.Internal}\n`;
    }
  }

  /** The answer to one line, or undefined for a blank line. */
  #handle(raw: Buffer): string | Promise<string> | undefined {
    const text = raw.toString('utf8').trim();
    if (text.length === 0) return undefined;
    if (exceedsJsonDepth(text, this.#options.maxJsonDepth)) return `error ${ErrorCode.BadRequest}\n`;
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
    const failed = (err: unknown): string => {
      if (err instanceof UnavailableError) return `error ${ErrorCode.Unavailable}\n`;
      this.#options.logger.error({ err }, 'inner text port: push failed');
      return `error ${ErrorCode.Internal}\n`;
    };
    return result instanceof Promise ? result.then(reply, failed) : reply(result);
  }
}

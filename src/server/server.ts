import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProgramErrorCode, UidpushError, type ErrorCode } from '../core/errors.js';
import { silentLogger, type Logger, type Uid } from '../core/types.js';
import { Hub } from '../delivery/hub.js';
import { Registry } from '../registry/registry.js';
import type { Connection, ConnectionInfo } from '../transport/connection.js';
import { WsTransport } from '../transport/ws-transport.js';
import {
  resolveServerOptions,
  type ResolvedServerOptions,
  type ServerOptionsInput,
} from './options.js';

/** Options of {@link createServer}: the validated settings plus a logger. */
export interface ServerOptions extends ServerOptionsInput {
  /** Where the server logs (a pino logger fits). Silent by default. */
  logger?: Logger;
}

/** A client's push or broadcast, as reported by the `message` event. */
export interface MessageEvent {
  /** The connection that sent it. */
  connection: ConnectionInfo;
  /** The sender's uid. */
  from: Uid;
  /** The target uid, or null for a broadcast (`all:`). */
  to: Uid | null;
  /** The message bytes (UTF-8 text), a view into the received frame. */
  data: Buffer;
  /** How many connections it was written to. */
  delivered: number;
}

/** A closed connection, as reported by the `close` event. */
export interface CloseEvent {
  connection: ConnectionInfo;
  /** The uid it was logged in as, if it logged in. */
  uid: Uid | undefined;
  /** The WebSocket close code (1006 when the socket went away without a close frame). */
  code: number;
  reason: string;
}

/** The events of a {@link UidpushServer}, with their arguments. */
export interface ServerEvents {
  /** A WebSocket connection was accepted (not yet logged in). */
  connection: [connection: ConnectionInfo];
  /** A connection logged in as `uid`. */
  login: [connection: ConnectionInfo, uid: Uid];
  /** A logged-in client pushed to a uid or broadcast. */
  message: [event: MessageEvent];
  /** A client message was refused with an error reply. */
  refused: [connection: ConnectionInfo, code: ErrorCode];
  /** A connection closed. */
  close: [event: CloseEvent];
  /** A connection was closed or skipped by the slow-consumer policy. */
  slowConsumer: [connection: ConnectionInfo, uid: Uid | undefined];
}

/** Where the server listens, once it does. */
export interface ListenAddress {
  host: string;
  port: number;
}

/**
 * A uidpush server: the seed text protocol on a WebSocket port, with the hub to push from
 * the embedding program. Made by {@link createServer}.
 */
export class UidpushServer extends EventEmitter<ServerEvents> {
  /**
   * The delivery hub: push to a uid, to uids, broadcast, presence, kick.
   *
   * @example
   * server.hub.sendToUid('alice', 'hello'); // every connection of alice gets "hello"
   */
  readonly hub: Hub<Connection>;
  /** The validated options in force. */
  readonly options: Readonly<ResolvedServerOptions>;
  readonly #http: HttpServer;
  readonly #transport: WsTransport;
  readonly #log: Logger;
  #state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  #closing: Promise<void> | undefined;

  /** @internal use {@link createServer}. */
  constructor(options: ServerOptions = {}) {
    super();
    const { logger, ...rest } = options;
    this.options = resolveServerOptions(rest);
    this.#log = logger ?? silentLogger;
    const registry = new Registry<Connection>();
    this.hub = new Hub<Connection>(registry, {
      maxBufferedBytes: this.options.maxBufferedBytes,
      slowConsumerPolicy: this.options.slowConsumerPolicy,
      onSlowConsumer: (conn, uid) => {
        this.#log.warn({ conn: conn.id, uid }, 'slow consumer');
        this.emit('slowConsumer', conn, uid);
      },
    });
    this.#transport = new WsTransport(
      this.hub,
      registry,
      this.options,
      {
        connection: (conn) => {
          this.emit('connection', conn);
        },
        login: (conn, uid) => {
          this.#log.debug({ conn: conn.id, uid }, 'login');
          this.emit('login', conn, uid);
        },
        message: (conn, from, to, data, delivered) => {
          if (this.listenerCount('message') === 0) return;
          this.emit('message', { connection: conn, from, to: to ?? null, data, delivered });
        },
        refused: (conn, code) => {
          this.emit('refused', conn, code);
        },
        close: (conn, uid, code, reason) => {
          this.emit('close', { connection: conn, uid, code, reason });
        },
      },
      this.#log,
    );
    this.#http = createHttpServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket' });
      res.end('uidpush: this port speaks WebSocket; connect with a WebSocket client\n');
    });
    this.#transport.attach(this.#http);
  }

  /** Number of open WebSocket connections, logged in or not. */
  get openConnections(): number {
    return this.#transport.openConnections;
  }

  /**
   * Starts listening on the configured host and port.
   *
   * @returns the address in use (with the real port when the option was 0).
   * @throws UidpushError UIDPUSH_ERR_BAD_STATE if called twice or after close.
   */
  async listen(): Promise<ListenAddress> {
    if (this.#state !== 'new') {
      throw new UidpushError(ProgramErrorCode.BadState, `cannot listen: server is ${this.#state}`);
    }
    this.#state = 'listening';
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        this.#state = 'closed';
        reject(err);
      };
      this.#http.once('error', onError);
      this.#http.listen({ host: this.options.host, port: this.options.port }, () => {
        this.#http.off('error', onError);
        resolve();
      });
    });
    const address = this.address();
    this.#log.info({ ...address }, 'listening');
    return address;
  }

  /** The address the server listens on. */
  address(): ListenAddress {
    const info = this.#http.address() as AddressInfo | null;
    if (info === null) throw new UidpushError(ProgramErrorCode.BadState, 'server is not listening');
    return { host: info.address, port: info.port };
  }

  /**
   * Graceful shutdown: stops accepting, closes every client with 1001 (going away), waits
   * up to `shutdownGrace` for them, then terminates the rest. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasListening = this.#state === 'listening';
    this.#state = 'closing';
    const httpClosed = new Promise<void>((resolve) => {
      if (!wasListening) {
        resolve();
        return;
      }
      this.#http.close(() => {
        resolve();
      });
    });
    await this.#transport.close(this.options.shutdownGrace);
    this.#http.closeAllConnections();
    await httpClosed;
    this.#state = 'closed';
    this.#log.info({}, 'closed');
  }
}

/**
 * Creates a uidpush server. Options are validated at once; call `listen()` to start.
 *
 * @example
 * import { createServer } from 'uidpush';
 *
 * const server = createServer({ port: 1234 });
 * server.on('login', (conn, uid) => console.log(`${uid} is online`));
 * await server.listen();
 * server.hub.sendToUid('alice', 'hello from the server');
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_CONFIG when an option is invalid.
 */
export function createServer(options: ServerOptions = {}): UidpushServer {
  return new UidpushServer(options);
}

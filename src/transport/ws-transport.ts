import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CloseCode } from '../core/close-codes.js';
import { ErrorCode } from '../core/errors.js';
import type { Logger, Uid } from '../core/types.js';
import { encodeTextFrame, PING_FRAME } from '../delivery/frame.js';
import type { Hub } from '../delivery/hub.js';
import { checkUid, errorLine, loginReply, parseCommand } from '../protocol/seed-text.js';
import type { Registry } from '../registry/registry.js';
import { Connection, type ConnectionOwner } from './connection.js';
import { Heartbeat } from './heartbeat.js';

/** Limits and timings of the WebSocket transport. All are validated by the server. */
export interface TransportOptions {
  /** Largest message accepted, in bytes; larger ones get `error: too_large`. */
  maxMessageSize: number;
  /** Longest uid, in UTF-8 bytes. */
  maxUidLength: number;
  /** Messages per second per connection (token bucket); 0 turns the limit off. */
  rateLimit: number;
  /** Messages a connection may send in a burst above the rate. */
  rateBurst: number;
  /** How often each connection is pinged, in ms. */
  heartbeatInterval: number;
  /** A connection that sends nothing (pongs included) for this long is dropped, in ms. */
  idleTimeout: number;
  /** A connection that has not logged in after this long is closed with 4002, in ms. */
  loginTimeout: number;
}

/** What the transport reports to the server; the server turns these into events. */
export interface TransportEvents {
  connection(conn: Connection): void;
  login(conn: Connection, uid: Uid): void;
  /** A push or broadcast from a client; `to` is undefined for `all:`. */
  message(conn: Connection, from: Uid, to: Uid | undefined, data: Buffer, written: number): void;
  close(conn: Connection, uid: Uid | undefined, code: number, reason: string): void;
  /** A connection was refused something; `code` is the error it was told. */
  refused(conn: Connection, code: ErrorCode): void;
}

/**
 * Frames larger than this are refused by ws before they are buffered (close 1009), so one
 * client can make the server hold at most this much of an incoming message.
 */
export const HARD_FRAME_LIMIT = 1024 * 1024;
const RATE_NOTICE_QUIET_MS = 1000;

/** Counters of the transport, monotonic since it was made. */
export interface TransportStats {
  /** Messages received from clients, refused ones included. */
  messagesIn: number;
  /** Bytes of those messages. */
  bytesIn: number;
  /** Client messages refused with an error, by code. */
  refused: Record<ErrorCode, number>;
  /** Connections dropped by the heartbeat (idle timeout) or closed by the login timeout. */
  heartbeatCloses: number;
}

/**
 * The WebSocket side of the server for the seed text protocol: upgrade, login, parsing,
 * limits and liveness. Delivery goes through the hub.
 */
export class WsTransport implements ConnectionOwner {
  readonly #wss: WebSocketServer;
  readonly #hub: Hub<Connection>;
  readonly #registry: Registry<Connection>;
  readonly #options: TransportOptions;
  readonly #events: TransportEvents;
  readonly #log: Logger;
  readonly #heartbeat: Heartbeat<Connection>;
  /** Connections that have not logged in yet, checked for the login timeout. */
  readonly #pending = new Set<Connection>();
  readonly #ratePerMs: number;
  #nextId = 1;
  #accepting = true;
  readonly #stats: TransportStats = {
    messagesIn: 0,
    bytesIn: 0,
    refused: Object.fromEntries(
      Object.values(ErrorCode).map((code) => [code, 0]),
    ) as Record<ErrorCode, number>,
    heartbeatCloses: 0,
  };

  constructor(
    hub: Hub<Connection>,
    registry: Registry<Connection>,
    options: TransportOptions,
    events: TransportEvents,
    log: Logger,
  ) {
    this.#hub = hub;
    this.#registry = registry;
    this.#options = options;
    this.#events = events;
    this.#log = log;
    this.#ratePerMs = options.rateLimit / 1000;
    this.#wss = new WebSocketServer({
      noServer: true,
      WebSocket: Connection,
      // The registry and the heartbeat wheel track connections; a third Set is waste.
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: Math.max(HARD_FRAME_LIMIT, options.maxMessageSize),
      // Only the seed protocol is spoken here: never accept a subprotocol we do not speak.
      handleProtocols: () => false,
    });
    this.#heartbeat = new Heartbeat<Connection>(
      options.heartbeatInterval,
      (conn, now) => {
        this.#visit(conn, now);
      },
      (now) => {
        this.#checkLogins(now);
      },
    );
  }

  /** A snapshot of the transport's counters. */
  get stats(): TransportStats {
    return { ...this.#stats, refused: { ...this.#stats.refused } };
  }

  /** Number of open connections, logged in or not. */
  get openConnections(): number {
    return this.#heartbeat.size;
  }

  /** Hands an HTTP upgrade request to ws. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.#accepting) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      // Always true: the server builds its sockets with the `WebSocket: Connection` option.
      if (ws instanceof Connection) this.#accept(ws, req);
    });
  }

  /** Attaches to an HTTP server's upgrade event. */
  attach(server: HttpServer): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head);
    });
  }

  write(conn: Connection, frame: Buffer): boolean {
    return this.#hub.write(conn, frame);
  }

  /**
   * Stops accepting, closes every connection with 1001, and resolves once all are closed
   * or `graceMs` has passed (the rest are then terminated).
   */
  async close(graceMs: number): Promise<void> {
    this.#accepting = false;
    const open = [...this.#heartbeat.all()];
    const closed = open.map(
      (conn) =>
        new Promise<void>((resolve) => {
          if (conn.readyState === Connection.CLOSED) {
            resolve();
            return;
          }
          conn.once('close', () => {
            resolve();
          });
          conn.close(CloseCode.GoingAway, 'server shutting down');
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(closed), grace]);
    clearTimeout(timer);
    for (const conn of this.#heartbeat.all()) conn.terminate();
    this.#heartbeat.stop();
  }

  #accept(conn: Connection, req: IncomingMessage): void {
    const now = Date.now();
    conn.id = this.#nextId++;
    conn.owner = this;
    conn.tcp = req.socket;
    conn.connectedAt = now;
    conn.lastSeen = now;
    conn.tokens = this.#options.rateBurst;
    conn.tokensAt = now;
    conn.on('message', onMessage);
    // Client pings are answered by ws; liveness is judged by pongs to our own pings.
    conn.on('pong', onAlive);
    conn.on('close', onClose);
    conn.on('error', onError);
    this.#heartbeat.add(conn);
    this.#pending.add(conn);
    this.#events.connection(conn);
  }

  /** @internal called by the shared message listener. */
  onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    const now = Date.now();
    conn.lastSeen = now;
    this.#stats.messagesIn++;
    this.#stats.bytesIn += data.length;
    if (!this.#takeToken(conn, now)) {
      if (now >= conn.quietUntil) {
        conn.quietUntil = now + RATE_NOTICE_QUIET_MS;
        this.#reply(
          conn,
          ErrorCode.RateLimited,
          `more than ${this.#options.rateLimit} messages/s; messages dropped`,
        );
      } else {
        this.#refused(conn, ErrorCode.RateLimited);
      }
      return;
    }
    if (isBinary) {
      this.#reply(conn, ErrorCode.BadRequest, 'binary frames are not supported; send text');
      return;
    }
    if (data.length > this.#options.maxMessageSize) {
      this.#reply(
        conn,
        ErrorCode.TooLarge,
        `message of ${data.length} bytes exceeds ${this.#options.maxMessageSize}`,
      );
      return;
    }
    const from = this.#registry.uidOf(conn);
    if (from === undefined) {
      this.#login(conn, data);
      return;
    }
    const command = parseCommand(data, this.#options.maxUidLength);
    switch (command.kind) {
      case 'error':
        this.#reply(conn, command.code, command.text);
        return;
      case 'push': {
        const written = this.#hub.sendToUid(command.uid, command.message);
        this.#events.message(conn, from, command.uid, command.message, written);
        return;
      }
      case 'broadcast': {
        const written = this.#hub.broadcast(command.message);
        this.#events.message(conn, from, undefined, command.message, written);
        return;
      }
    }
  }

  /** @internal called by the shared close listener. */
  onClose(conn: Connection, code: number, reason: Buffer): void {
    this.#heartbeat.remove(conn);
    this.#pending.delete(conn);
    // The uid may already be unbound (kick, slow consumer); report the one it had.
    this.#registry.unbind(conn);
    this.#events.close(conn, conn.uid, code, reason.toString());
  }

  #login(conn: Connection, data: Buffer): void {
    // Bytes are valid UTF-8 here: ws closes with 1007 on invalid text frames.
    const uid = data.toString('utf8');
    const refusal = checkUid(uid, this.#options.maxUidLength);
    if (refusal !== undefined) {
      this.#reply(conn, ErrorCode.BadRequest, refusal);
      return;
    }
    this.#pending.delete(conn);
    conn.uid = uid;
    this.#registry.bind(conn, uid);
    this.#hub.write(conn, encodeTextFrame(loginReply(uid)));
    this.#events.login(conn, uid);
  }

  #takeToken(conn: Connection, now: number): boolean {
    if (this.#ratePerMs === 0) return true;
    const refill = (now - conn.tokensAt) * this.#ratePerMs;
    conn.tokens = Math.min(this.#options.rateBurst, conn.tokens + refill);
    conn.tokensAt = now;
    if (conn.tokens < 1) return false;
    conn.tokens -= 1;
    return true;
  }

  #refused(conn: Connection, code: ErrorCode): void {
    this.#stats.refused[code]++;
    this.#events.refused(conn, code);
  }

  #reply(conn: Connection, code: ErrorCode, text: string): void {
    this.#refused(conn, code);
    this.#hub.write(conn, encodeTextFrame(errorLine(code, text)));
  }

  #visit(conn: Connection, now: number): void {
    if (now - conn.lastSeen > this.#options.idleTimeout) {
      // A dead peer cannot read a close frame; destroy the socket at once.
      this.#log.debug({ conn: conn.id, uid: conn.uid }, 'idle timeout: terminating');
      this.#stats.heartbeatCloses++;
      this.#registry.unbind(conn);
      conn.terminate();
      return;
    }
    // Pings bypass the hub: they are not pushes, and two bytes never trip the cap.
    conn.writeFrame(PING_FRAME);
  }

  #checkLogins(now: number): void {
    for (const conn of this.#pending) {
      if (now - conn.connectedAt > this.#options.loginTimeout) {
        this.#pending.delete(conn);
        this.#stats.heartbeatCloses++;
        conn.close(CloseCode.LoginTimeout, 'login timeout');
      }
    }
  }
}

// Shared listeners: `this` is the connection (ws types it as its base class; the
// instanceof checks narrow it), so no closure is made per connection.
function onMessage(this: WebSocket, data: Buffer, isBinary: boolean): void {
  if (this instanceof Connection) this.owner?.onMessage(this, data, isBinary);
}
function onAlive(this: WebSocket): void {
  if (this instanceof Connection) this.lastSeen = Date.now();
}
function onClose(this: WebSocket, code: number, reason: Buffer): void {
  if (this instanceof Connection) this.owner?.onClose(this, code, reason);
}
function onError(): void {
  // ws has already started closing the connection with the matching code (1002, 1007,
  // 1009); the close listener does the cleanup. Nothing here may throw.
}

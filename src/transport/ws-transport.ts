import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { TokenError, type Identity, type TokenVerifier } from '../auth/jwt.js';
import { canBroadcast, canJoin, canPublish, canSend, type Grants, type Right } from '../auth/rights.js';
import { CloseCode } from '../core/close-codes.js';
import { ErrorCode } from '../core/errors.js';
import type { OriginCheck } from '../core/origins.js';
import type { Sync } from '../core/service.js';
import type { Data, Logger, Uid } from '../core/types.js';
import { encodeTextFrame, PING_FRAME } from '../delivery/frame.js';
import type { Hub } from '../delivery/hub.js';
import { whenReady, type Router } from '../delivery/router.js';
import { Codec, negotiate } from '../protocol/codec.js';
import {
  ackFrame,
  errorFrame,
  parseClientFrame,
  pongFrame,
  welcomeFrame,
  type ClientFrame,
  type RequestId,
} from '../protocol/json-v1.js';
import { checkUid, errorLine, loginReply, parseCommand } from '../protocol/seed-text.js';
import type { Registry } from '../registry/registry.js';
import { Connection, type ConnectionOwner } from './connection.js';
import { ExpiryQueue } from './expiry.js';
import { Heartbeat } from './heartbeat.js';

/** Limits and timings of the WebSocket transport. All are validated by the server. */
export interface TransportOptions {
  /** Largest message accepted, in bytes; larger ones get `too_large`. */
  maxMessageSize: number;
  /** Longest uid (and group name), in UTF-8 bytes. */
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
  /** Rights of a client whose token has no `rights` claim, or of every client without auth. */
  clientRights: readonly Right[];
  /** Whether a handshake's Origin is accepted (others get 403); unset: every origin. */
  checkOrigin?: OriginCheck | undefined;
}

/** What the transport reports to the server; the server turns these into events. */
export interface TransportEvents {
  connection(conn: Connection): void;
  login(conn: Connection, uid: Uid): void;
  /** A push, publish or broadcast from a client. */
  message(conn: Connection, from: Uid, scope: 'uid' | 'group' | 'broadcast', to: string | undefined, data: Data, written: number): void;
  close(conn: Connection, uid: Uid | undefined, code: number, reason: string): void;
  /** A connection was refused something; `code` is the error it was told. */
  refused(conn: Connection, code: ErrorCode): void;
}

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
 * Frames larger than this are refused by ws before they are buffered (close 1009), so one
 * client can make the server hold at most this much of an incoming message.
 */
export const HARD_FRAME_LIMIT = 1024 * 1024;
const RATE_NOTICE_QUIET_MS = 1000;
/** Messages a client may send while its token is being verified; more are refused. */
const MAX_HELD = 32;

/**
 * The WebSocket side of the server: upgrade and subprotocol, authentication, both
 * protocols' parsing, rights, limits and liveness. Delivery goes through the hub.
 */
export class WsTransport implements ConnectionOwner {
  readonly #wss: WebSocketServer;
  readonly #hub: Hub<Connection>;
  #router: Router;
  readonly #registry: Registry<Connection>;
  readonly #options: TransportOptions;
  readonly #events: TransportEvents;
  readonly #log: Logger;
  readonly #heartbeat: Heartbeat<Connection>;
  readonly #expiries = new ExpiryQueue<Connection>();
  /** Connections that have not logged in yet, checked for the login timeout. */
  readonly #pending = new Set<Connection>();
  readonly #ratePerMs: number;
  #verifier: TokenVerifier | undefined;
  /** Grants of every connection when auth is off: one shared object. */
  readonly #openGrants: Grants;
  readonly #tokenDefaultRights: ReadonlySet<Right>;
  #nextId = 1;
  #accepting = true;
  readonly #stats: TransportStats = {
    messagesIn: 0,
    bytesIn: 0,
    refused: Object.fromEntries(Object.values(ErrorCode).map((code) => [code, 0])) as Record<ErrorCode, number>,
    heartbeatCloses: 0,
  };

  constructor(
    hub: Hub<Connection>,
    router: Router,
    registry: Registry<Connection>,
    options: TransportOptions,
    events: TransportEvents,
    log: Logger,
  ) {
    this.#hub = hub;
    this.#router = router;
    this.#registry = registry;
    this.#options = options;
    this.#events = events;
    this.#log = log;
    this.#ratePerMs = options.rateLimit / 1000;
    this.#openGrants = { rights: new Set(options.clientRights), groups: 'any' };
    this.#tokenDefaultRights = new Set(options.clientRights);
    this.#wss = new WebSocketServer({
      noServer: true,
      WebSocket: Connection,
      // The registry and the heartbeat wheel track connections; a third Set is waste.
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: Math.max(HARD_FRAME_LIMIT, options.maxMessageSize),
      // uidpush.v1 when offered; otherwise no subprotocol: the seed text protocol.
      handleProtocols: (offered) => negotiate(offered).subprotocol ?? false,
    });
    this.#heartbeat = new Heartbeat<Connection>(
      options.heartbeatInterval,
      (conn, now) => {
        this.#visit(conn, now);
      },
      (now) => {
        this.#tick(now);
      },
    );
  }

  /** Routes client pushes through a cluster; set before listening. */
  setRouter(router: Router): void {
    this.#router = router;
  }

  /** Turns token auth on; set before listening. */
  setVerifier(verifier: TokenVerifier | undefined): void {
    this.#verifier = verifier;
  }

  /** A snapshot of the transport's counters. */
  get stats(): TransportStats {
    return { ...this.#stats, refused: { ...this.#stats.refused } };
  }

  /** Number of open connections, logged in or not. */
  get openConnections(): number {
    return this.#heartbeat.size;
  }

  /** Hands an HTTP upgrade request to ws, verifying a handshake token first. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.#accepting) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    // Before any work: a page from a refused origin gets no WebSocket and no token check.
    if (this.#options.checkOrigin?.(handshakeOrigin(req)) === false) {
      this.#log.debug({ origin: handshakeOrigin(req) }, 'handshake refused: origin not allowed');
      refuseHandshake(socket, 403, 'Forbidden', 'uidpush: origin not allowed\n');
      return;
    }
    const token = handshakeToken(req);
    const verifier = this.#verifier;
    if (token === undefined || verifier === undefined) {
      this.#upgrade(req, socket, head, undefined);
      return;
    }
    // The socket waits for the 101 while the token is checked; an error meanwhile must
    // not go unheard (ws takes the socket's errors over once it upgrades).
    const onError = (): void => {
      socket.destroy();
    };
    socket.on('error', onError);
    verifier.verify(token).then(
      (identity) => {
        socket.off('error', onError);
        this.#upgrade(req, socket, head, identity);
      },
      (err: unknown) => {
        socket.off('error', onError);
        this.#upgrade(req, socket, head, err instanceof TokenError ? err : new TokenError('token refused'));
      },
    );
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

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, auth: Identity | TokenError | undefined): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      // Always true: the server builds its sockets with the `WebSocket: Connection` option.
      if (!(ws instanceof Connection)) return;
      this.#accept(ws, req);
      if (auth instanceof TokenError) this.#refuseToken(ws, auth, undefined);
      else if (auth !== undefined) this.#loginWith(ws, auth, undefined);
    });
  }

  #accept(conn: Connection, req: IncomingMessage): void {
    const now = Date.now();
    conn.id = this.#nextId++;
    conn.owner = this;
    conn.tcp = req.socket;
    conn.codec = conn.protocol === '' ? Codec.Seed : Codec.JsonV1;
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
        this.#error(conn, ErrorCode.RateLimited, `more than ${this.#options.rateLimit} messages/s; messages dropped`);
      } else {
        this.#refused(conn, ErrorCode.RateLimited);
      }
      return;
    }
    if (isBinary) {
      this.#error(conn, ErrorCode.BadRequest, 'binary frames are not supported; send text');
      return;
    }
    if (data.length > this.#options.maxMessageSize) {
      this.#error(conn, ErrorCode.TooLarge, `message of ${data.length} bytes exceeds ${this.#options.maxMessageSize}`);
      return;
    }
    if (conn.held !== undefined) {
      // A token is being verified: keep the order, replay after.
      if (conn.held.length < MAX_HELD) conn.held.push(data);
      else this.#error(conn, ErrorCode.RateLimited, 'too many messages while authenticating; message dropped');
      return;
    }
    this.#dispatch(conn, data);
  }

  #dispatch(conn: Connection, data: Buffer): void {
    if (conn.codec === Codec.Seed) this.#seedMessage(conn, data);
    else this.#jsonMessage(conn, data);
  }

  /** @internal called by the shared close listener. */
  onClose(conn: Connection, code: number, reason: Buffer): void {
    this.#heartbeat.remove(conn);
    this.#pending.delete(conn);
    this.#expiries.delete(conn);
    conn.held = undefined;
    // The uid may already be unbound (kick, slow consumer); report the one it had.
    this.#registry.unbind(conn);
    this.#events.close(conn, conn.uid, code, reason.toString());
  }

  // The seed text protocol.

  #seedMessage(conn: Connection, data: Buffer): void {
    const from = this.#registry.uidOf(conn);
    if (from === undefined || conn.grants === undefined) {
      // Bytes are valid UTF-8 here: ws closes with 1007 on invalid text frames.
      const text = data.toString('utf8');
      if (this.#verifier !== undefined) this.#verifyToken(conn, text, undefined);
      else this.#loginAsUid(conn, text, undefined);
      return;
    }
    const command = parseCommand(data, this.#options.maxUidLength);
    switch (command.kind) {
      case 'error':
        this.#error(conn, command.code, command.text);
        return;
      case 'push': {
        if (!canSend(conn.grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to send to a uid');
          return;
        }
        // No acknowledgement in the seed protocol: never pay for a cluster-wide answer.
        this.#routed(this.#router.sendToUid(command.uid, command.message, from, false), (r) => {
          this.#events.message(conn, from, 'uid', command.uid, command.message, r.connections);
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(conn.grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to broadcast');
          return;
        }
        this.#routed(this.#router.broadcast(command.message, from, false), (written) => {
          this.#events.message(conn, from, 'broadcast', undefined, command.message, written);
        });
        return;
      }
    }
  }

  // The uidpush.v1 JSON protocol.

  #jsonMessage(conn: Connection, data: Buffer): void {
    const parsed = parseClientFrame(data);
    if (parsed.kind === 'error') {
      this.#error(conn, parsed.code, parsed.message, parsed.id);
      return;
    }
    const frame = parsed.frame;
    if (frame.type === 'ping') {
      this.#send(conn, pongFrame(frame.id));
      return;
    }
    if (frame.type === 'auth') {
      this.#jsonAuth(conn, frame);
      return;
    }
    const from = this.#registry.uidOf(conn);
    const grants = conn.grants;
    if (from === undefined || grants === undefined) {
      this.#error(conn, ErrorCode.Unauthorized, 'authenticate first (send an auth frame)', frame.id);
      return;
    }
    switch (frame.type) {
      case 'send': {
        if (!this.#validName(conn, frame.to, 'to', frame.id)) return;
        if (!canSend(grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to send to a uid', frame.id);
          return;
        }
        this.#routed(this.#router.sendToUid(frame.to, frame.data, from, frame.id !== undefined), (r) => {
          this.#events.message(conn, from, 'uid', frame.to, frame.data, r.connections);
          this.#ack(conn, frame.id, { online: r.online > 0, connections: r.connections });
        });
        return;
      }
      case 'publish': {
        if (!this.#validName(conn, frame.group, 'group', frame.id)) return;
        if (!canPublish(grants, frame.group)) {
          this.#error(conn, ErrorCode.Forbidden, `no right to publish to group ${frame.group}`, frame.id);
          return;
        }
        this.#routed(this.#router.publish(frame.group, frame.data, from, frame.id !== undefined), (r) => {
          this.#events.message(conn, from, 'group', frame.group, frame.data, r.connections);
          this.#ack(conn, frame.id, { online: r.online, connections: r.connections });
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to broadcast', frame.id);
          return;
        }
        this.#routed(this.#router.broadcast(frame.data, from, frame.id !== undefined), (written) => {
          this.#events.message(conn, from, 'broadcast', undefined, frame.data, written);
          this.#ack(conn, frame.id, { connections: written });
        });
        return;
      }
      case 'join': {
        if (!this.#validName(conn, frame.group, 'group', frame.id)) return;
        if (!canJoin(grants, frame.group)) {
          this.#error(conn, ErrorCode.Forbidden, `no right to join group ${frame.group}`, frame.id);
          return;
        }
        this.#routed(this.#router.join(frame.group, from), (joined) => {
          this.#ack(conn, frame.id, { group: frame.group, joined });
        });
        return;
      }
      case 'leave': {
        if (!this.#validName(conn, frame.group, 'group', frame.id)) return;
        this.#routed(this.#router.leave(frame.group, from), (left) => {
          this.#ack(conn, frame.id, { group: frame.group, left });
        });
        return;
      }
    }
  }

  #jsonAuth(conn: Connection, frame: Extract<ClientFrame, { type: 'auth' }>): void {
    if (this.#verifier !== undefined) {
      if (frame.token === undefined) {
        this.#error(conn, ErrorCode.BadRequest, 'auth: token required', frame.id);
        return;
      }
      this.#verifyToken(conn, frame.token, frame.id);
      return;
    }
    if (this.#registry.uidOf(conn) !== undefined) {
      this.#error(conn, ErrorCode.BadRequest, 'auth: already authenticated', frame.id);
      return;
    }
    if (frame.uid === undefined) {
      this.#error(conn, ErrorCode.BadRequest, 'auth: uid required (token auth is off)', frame.id);
      return;
    }
    this.#loginAsUid(conn, frame.uid, frame.id);
  }

  // Authentication, for both protocols.

  #loginAsUid(conn: Connection, uid: string, id: RequestId): void {
    const refusal = checkUid(uid, this.#options.maxUidLength);
    if (refusal !== undefined) {
      this.#error(conn, ErrorCode.BadRequest, refusal, id);
      return;
    }
    this.#login(conn, uid, this.#openGrants, 0, id);
  }

  /** Verifies a token from the first seed message or an auth frame; holds messages meanwhile. */
  #verifyToken(conn: Connection, token: string, id: RequestId): void {
    const verifier = this.#verifier;
    if (verifier === undefined) return;
    conn.held = [];
    conn.pause();
    verifier.verify(token).then(
      (identity) => {
        if (conn.readyState !== Connection.OPEN) return;
        const current = this.#registry.uidOf(conn);
        if (current === undefined) this.#loginWith(conn, identity, id);
        else this.#refresh(conn, current, identity, id);
        this.#release(conn);
      },
      (err: unknown) => {
        conn.held = undefined;
        if (conn.readyState !== Connection.OPEN) return;
        // Read again, so the client's answer to our close frame ends the connection at once.
        conn.resume();
        this.#refuseToken(conn, err instanceof TokenError ? err : new TokenError('token refused'), id);
      },
    );
  }

  /** Replays the messages held during verification, in order. */
  #release(conn: Connection): void {
    const held = conn.held ?? [];
    conn.held = undefined;
    for (const data of held) {
      if (conn.readyState !== Connection.OPEN) break;
      this.#dispatch(conn, data);
    }
    if (conn.readyState === Connection.OPEN) conn.resume();
  }

  #loginWith(conn: Connection, identity: Identity, id: RequestId): void {
    const grants: Grants = {
      rights: identity.rights ?? this.#tokenDefaultRights,
      groups: identity.groups ?? new Set(),
    };
    this.#login(conn, identity.uid, grants, identity.expiresAt ?? 0, id);
  }

  #refresh(conn: Connection, current: Uid, identity: Identity, id: RequestId): void {
    if (identity.uid !== current) {
      this.#error(conn, ErrorCode.Forbidden, `token is for uid ${identity.uid}, this connection is ${current}`, id);
      return;
    }
    conn.grants = { rights: identity.rights ?? this.#tokenDefaultRights, groups: identity.groups ?? new Set() };
    this.#expiries.set(conn, identity.expiresAt ?? 0);
    this.#ack(conn, id, { refreshed: true, expiresAt: identity.expiresAt ?? null });
  }

  #refuseToken(conn: Connection, err: TokenError, id: RequestId): void {
    this.#error(conn, ErrorCode.Unauthorized, err.message, id);
    conn.close(CloseCode.Unauthorized, err.message.slice(0, 120));
  }

  #login(conn: Connection, uid: Uid, grants: Grants, expiresAt: number, id: RequestId): void {
    this.#pending.delete(conn);
    conn.uid = uid;
    conn.grants = grants;
    this.#expiries.set(conn, expiresAt);
    this.#registry.bind(conn, uid);
    this.#send(conn, conn.codec === Codec.Seed ? loginReply(uid) : welcomeFrame(uid, conn.id, id));
    this.#events.login(conn, uid);
  }

  // Replies.

  /** Runs `then` with a routed result when it is ready; a failure is logged, not thrown. */
  #routed<T>(result: Sync<T>, then: (value: T) => void): void {
    whenReady(result, then, (err: unknown) => {
      this.#log.error({ err }, 'routing a client message failed');
    });
  }

  #send(conn: Connection, text: string): void {
    this.#hub.write(conn, encodeTextFrame(text));
  }

  #ack(conn: Connection, id: RequestId, result: Record<string, string | number | boolean | null>): void {
    // Acks answer requests that asked (carried an id); the rest stay fire-and-forget.
    if (id !== undefined) this.#send(conn, ackFrame(id, result));
  }

  #refused(conn: Connection, code: ErrorCode): void {
    this.#stats.refused[code]++;
    this.#events.refused(conn, code);
  }

  /** Answers with an error in the connection's protocol; the connection stays open. */
  #error(conn: Connection, code: ErrorCode, text: string, id?: RequestId): void {
    this.#refused(conn, code);
    this.#send(conn, conn.codec === Codec.Seed ? errorLine(code, text) : errorFrame(code, text, id));
  }

  #validName(conn: Connection, name: string, field: string, id: RequestId): boolean {
    if (Buffer.byteLength(name) > this.#options.maxUidLength) {
      this.#error(conn, ErrorCode.BadRequest, `${field}: longer than ${this.#options.maxUidLength} bytes`, id);
      return false;
    }
    return true;
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

  // Liveness.

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

  #tick(now: number): void {
    for (const conn of this.#pending) {
      if (now - conn.connectedAt > this.#options.loginTimeout) {
        this.#pending.delete(conn);
        this.#stats.heartbeatCloses++;
        conn.close(CloseCode.LoginTimeout, 'login timeout');
      }
    }
    for (const conn of this.#expiries.due(now)) {
      this.#registry.unbind(conn);
      conn.close(CloseCode.TokenExpired, 'token expired');
    }
  }
}

/** The page origin a browser sent (`Sec-WebSocket-Origin` in protocol version 8). */
function handshakeOrigin(req: IncomingMessage): string | undefined {
  const origin = req.headers.origin ?? req.headers['sec-websocket-origin'];
  // Repeated headers arrive joined or as a list: no origin matches them.
  return Array.isArray(origin) ? origin.join(', ') : origin;
}

/** Answers a handshake with an HTTP error and closes the socket; ws never sees it. */
function refuseHandshake(socket: Duplex, status: number, statusText: string, body: string): void {
  socket.on('error', () => {
    socket.destroy();
  });
  socket.once('finish', () => {
    socket.destroy();
  });
  socket.end(
    `HTTP/1.1 ${String(status)} ${statusText}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${String(Buffer.byteLength(body))}\r\n\r\n${body}`,
  );
}

/** A token offered at the handshake: `?token=` or `Authorization: Bearer`. */
function handshakeToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match?.[1] !== undefined) return match[1];
  }
  const query = req.url?.indexOf('?') ?? -1;
  if (query === -1 || req.url === undefined) return undefined;
  return new URLSearchParams(req.url.slice(query + 1)).get('token') ?? undefined;
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

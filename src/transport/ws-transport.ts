import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { TokenError, type Identity, type TokenVerifier } from '../auth/jwt.js';
import { canBroadcast, canJoin, canPublish, canSend, type Grants, type Right } from '../auth/rights.js';
import { CloseCode } from '../core/close-codes.js';
import { ErrorCode, UnavailableError } from '../core/errors.js';
import { isLimitExceeded } from '../core/limits.js';
import { checkName, checkUid, type NameKind } from '../core/names.js';
import type { OriginCheck } from '../core/origins.js';
import { whenReady, type MaybePromise, type SessionNode, type UpgradeRefusal } from '../core/service.js';
import type { Data, Logger, Uid } from '../core/types.js';
import { encodeTextFrame, PING_FRAME } from '../delivery/ws-frame.js';
import type { Hub } from '../delivery/hub.js';
import { Codec, JSON_V1_SUBPROTOCOL, negotiate } from '../protocol/codec.js';
import {
  ackFrame,
  errorFrame,
  parseClientFrame,
  pongFrame,
  welcomeFrame,
  type ClientFrame,
  type RequestId,
} from '../protocol/json-v1.js';
import { errorLine, loginReply, parseCommand } from '../protocol/seed-text.js';
import { Connection, type ConnectionOwner } from './connection.js';
import { ExpiryQueue } from './expiry.js';
import { Heartbeat } from './heartbeat.js';
import { setReceiveLimit } from './receive-limit.js';

/** Limits and timings of the WebSocket transport. All are validated by the server. */
export interface TransportOptions {
  /** Largest message accepted after login, in bytes; a larger frame is refused unread (1009). */
  maxMessageSize: number;
  /** Largest frame accepted before login, in bytes (at most `maxMessageSize`); larger: 1009. */
  maxPreLoginMessageSize: number;
  /** Connections not logged in yet (handshakes being verified included); more get 503. */
  maxPendingConnections: number;
  /** Open connections per IP address; more get 429. 0: no limit. */
  maxConnectionsPerIp: number;
  /** Handshakes per IP address per second; more get 429. 0: no limit. */
  maxHandshakesPerIp: number;
  /** How long a peer the server closes has to answer the close frame, in ms; then terminated. */
  closeGrace: number;
  /** Longest uid (and group name), in UTF-8 bytes. */
  maxUidLength: number;
  /** Most levels of nesting in a v1 frame's data; deeper frames are refused unparsed. */
  maxJsonDepth: number;
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
  /**
   * Handling a connection's message, opening or close threw (a bug); it is already logged
   * and answered. Must not throw.
   */
  internalError(conn: Connection): void;
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
  /** Closing connections terminated because the peer did not answer within `closeGrace`. */
  closeGraceTerminations: number;
  /** Upgrades refused: too many pending connections, per-IP open cap, per-IP rate. */
  upgradesRefused: Record<UpgradeRefusal, number>;
}

/** How long a client refused at the upgrade is told to wait, in seconds. */
const RETRY_AFTER_S = 1;
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
  #node: SessionNode<Connection>;
  readonly #options: TransportOptions;
  readonly #events: TransportEvents;
  readonly #log: Logger;
  readonly #heartbeat: Heartbeat<Connection>;
  readonly #expiries = new ExpiryQueue<Connection>();
  /**
   * Connections that have not logged in yet, checked for the login timeout. In the order
   * they were accepted, so the oldest come first and the tick stops at the first not due.
   */
  readonly #pending = new Set<Connection>();
  /** Upgrades waiting for their handshake token's verification: pending too. */
  #handshaking = 0;
  /** Closing connections, in the order they started closing (so by `closeBy`). */
  readonly #closing = new Set<Connection>();
  /** Open connections (and upgrades in progress) per IP, when that limit is on; no zeros. */
  readonly #perIp = new Map<string, number>();
  /** Handshakes per IP in the current one-second window, when that limit is on. */
  readonly #handshakesPerIp = new Map<string, number>();
  #handshakeWindowEnds = 0;
  readonly #preLoginLimit: number;
  #warnedReceiveLimit = false;
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
    closeGraceTerminations: 0,
    upgradesRefused: { pending: 0, per_ip: 0, handshake_rate: 0 },
  };

  constructor(
    hub: Hub<Connection>,
    node: SessionNode<Connection>,
    options: TransportOptions,
    events: TransportEvents,
    log: Logger,
  ) {
    this.#hub = hub;
    this.#node = node;
    this.#options = options;
    this.#events = events;
    this.#log = log;
    this.#ratePerMs = options.rateLimit / 1000;
    this.#openGrants = { rights: new Set(options.clientRights), groups: 'any' };
    this.#tokenDefaultRights = new Set(options.clientRights);
    this.#preLoginLimit = Math.min(options.maxPreLoginMessageSize, options.maxMessageSize);
    this.#wss = new WebSocketServer({
      noServer: true,
      WebSocket: Connection,
      // The registry and the heartbeat wheel track connections; a third Set is waste.
      clientTracking: false,
      perMessageDeflate: false,
      // The logged-in limit; each connection starts at the pre-login one (#accept).
      maxPayload: options.maxMessageSize,
      // uidpush.v1 when offered (handleUpgrade refused a handshake offering only others);
      // no header: the seed text protocol.
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

  /** The node client sessions push through (a cluster's, once it has one); set before listening. */
  setNode(node: SessionNode<Connection>): void {
    this.#node = node;
  }

  /** Turns token auth on; set before listening. */
  setVerifier(verifier: TokenVerifier | undefined): void {
    this.#verifier = verifier;
  }

  /** A snapshot of the transport's counters. */
  get stats(): TransportStats {
    return { ...this.#stats, refused: { ...this.#stats.refused }, upgradesRefused: { ...this.#stats.upgradesRefused } };
  }

  /** Number of open connections, logged in or not. */
  get openConnections(): number {
    return this.#heartbeat.size;
  }

  /**
   * Hands an HTTP upgrade request to ws, verifying a handshake token first. The caps on
   * pending connections and per-IP limits are checked here, before ws does any work.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.#accepting) {
      refuseUpgrade(socket, 503, 'server shutting down');
      return;
    }
    // Before any work: a page from a refused origin gets no WebSocket and no token check.
    if (this.#options.checkOrigin?.(handshakeOrigin(req)) === false) {
      this.#log.debug({ origin: handshakeOrigin(req) }, 'handshake refused: origin not allowed');
      refuseUpgrade(socket, 403, 'uidpush: origin not allowed');
      return;
    }
    if (!offersOurSubprotocol(req.headers['sec-websocket-protocol'])) {
      this.#log.debug({ offered: req.headers['sec-websocket-protocol'] }, 'handshake refused: no supported subprotocol');
      refuseUpgrade(socket, 400, UNSUPPORTED_SUBPROTOCOL);
      return;
    }
    const ip = req.socket.remoteAddress;
    if (ip === undefined) {
      // The peer is already gone.
      socket.destroy();
      return;
    }
    const refusal = this.#admit(ip);
    if (refusal !== undefined) {
      refuseUpgrade(socket, refusal.status, refusal.text);
      return;
    }
    this.#handshaking++;
    const token = handshakeToken(req);
    const verifier = this.#verifier;
    if (token === undefined || verifier === undefined) {
      this.#upgrade(req, socket, head, undefined, ip);
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
        this.#upgrade(req, socket, head, identity, ip);
      },
      (err: unknown) => {
        socket.off('error', onError);
        this.#upgrade(req, socket, head, err instanceof TokenError ? err : new TokenError('token refused'), ip);
      },
    );
  }

  /** Attaches to an HTTP server's upgrade event. */
  attach(server: HttpServer): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head);
    });
    // Without a listener node answers what its parser refuses with a bare status line;
    // these say what was wrong, in the text/plain of every other refusal of this port.
    server.on('clientError', answerClientError);
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

  /**
   * Whether a handshake from `ip` may go on; if so, it is counted (per-IP rate and open
   * connections). Refused: the status and text to answer with.
   */
  #admit(ip: string): { status: 429 | 503; text: string } | undefined {
    const o = this.#options;
    if (o.maxHandshakesPerIp > 0) {
      const started = (this.#handshakesPerIp.get(ip) ?? 0) + 1;
      this.#handshakesPerIp.set(ip, started);
      if (started > o.maxHandshakesPerIp) {
        this.#stats.upgradesRefused.handshake_rate++;
        return { status: 429, text: `more than ${o.maxHandshakesPerIp} handshakes/s from this address` };
      }
    }
    if (this.#pending.size + this.#handshaking >= o.maxPendingConnections) {
      this.#stats.upgradesRefused.pending++;
      return { status: 503, text: `too many connections waiting to log in (${o.maxPendingConnections})` };
    }
    if (o.maxConnectionsPerIp > 0) {
      const open = this.#perIp.get(ip) ?? 0;
      if (open >= o.maxConnectionsPerIp) {
        this.#stats.upgradesRefused.per_ip++;
        return { status: 429, text: `more than ${o.maxConnectionsPerIp} connections from this address` };
      }
      this.#perIp.set(ip, open + 1);
    }
    return undefined;
  }

  /** Gives back the per-IP slot taken by #admit. */
  #releaseIp(ip: string): void {
    if (this.#options.maxConnectionsPerIp === 0) return;
    const open = (this.#perIp.get(ip) ?? 0) - 1;
    // Deleted at zero, so the map holds only addresses with open connections.
    if (open > 0) this.#perIp.set(ip, open);
    else this.#perIp.delete(ip);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, auth: Identity | TokenError | undefined, ip: string): void {
    const nextId = this.#nextId;
    this.#handshaking--;
    // Synchronous: without verifyClient, ws either calls back or refuses the socket at once
    // (a bad handshake answered 400 then destroyed, or destroyed outright when the peer sent
    // FIN while its token was being verified).
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      // Always true: the server builds its sockets with the `WebSocket: Connection` option.
      if (!(ws instanceof Connection)) return;
      try {
        this.#accept(ws, req, ip);
        if (auth instanceof TokenError) this.#refuseToken(ws, auth, undefined);
        else if (auth !== undefined) this.#loginWith(ws, auth, undefined);
      } catch (err) {
        this.#internal(ws, err, undefined, 'opening a connection');
      }
    });
    // #accept takes an id; if none was taken, the upgrade failed and gives its slot back.
    if (this.#nextId === nextId) this.#releaseIp(ip);
  }

  #accept(conn: Connection, req: IncomingMessage, ip: string): void {
    const now = Date.now();
    if (this.#options.maxConnectionsPerIp > 0) conn.countedIp = ip;
    this.#limitReceive(conn, this.#preLoginLimit);
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
    // The last resort: whatever throws while one frame is handled (a bug, an embedding
    // program's listener) is answered on that connection only and never reaches ws's
    // event emitter, where it would end the process and every other connection.
    try {
      this.#message(conn, data, isBinary);
    } catch (err) {
      this.#internal(conn, err, undefined, 'handling a client message');
    }
  }

  #message(conn: Connection, data: Buffer, isBinary: boolean): void {
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

  /** @internal called when a connection starts closing, whoever closed it. */
  onClosing(conn: Connection): void {
    // At shutdown, close() waits `shutdownGrace` for everyone and terminates the rest.
    if (!this.#accepting) return;
    conn.closeBy = Date.now() + this.#options.closeGrace;
    this.#closing.add(conn);
  }

  /** @internal called by the shared error listener: ws is closing the connection. */
  onError(conn: Connection, err: Error): void {
    if ((err as Error & { code?: unknown }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.#refused(conn, ErrorCode.TooLarge);
    }
  }

  /** @internal called by the shared close listener. */
  onClose(conn: Connection, code: number, reason: Buffer): void {
    this.#heartbeat.remove(conn);
    this.#pending.delete(conn);
    this.#closing.delete(conn);
    if (conn.countedIp !== undefined) {
      this.#releaseIp(conn.countedIp);
      conn.countedIp = undefined;
    }
    this.#expiries.delete(conn);
    conn.held = undefined;
    // The uid may already be unbound (kick, slow consumer); report the one it had.
    this.#node.detach(conn);
    const text = reason.toString();
    this.#log.debug({ conn: conn.id, uid: conn.uid, code, reason: text, by: conn.closedBy ?? 'lost' }, 'connection closed');
    try {
      this.#events.close(conn, conn.uid, code, text);
    } catch (err) {
      this.#internal(conn, err, undefined, 'reporting a close');
    }
  }

  // The seed text protocol.

  #seedMessage(conn: Connection, data: Buffer): void {
    const from = this.#node.uidOf(conn);
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
        this.#routed(conn, undefined, this.#node.sendToUid(command.uid, command.message, from, false), (r) => {
          this.#events.message(conn, from, 'uid', command.uid, command.message, r.connections);
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(conn.grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to broadcast');
          return;
        }
        this.#routed(conn, undefined, this.#node.broadcast(command.message, from, false), (r) => {
          this.#events.message(conn, from, 'broadcast', undefined, command.message, r.connections);
        });
        return;
      }
    }
  }

  // The uidpush.v1 JSON protocol.

  #jsonMessage(conn: Connection, data: Buffer): void {
    const parsed = parseClientFrame(data, this.#options.maxJsonDepth);
    if (parsed.kind === 'error') {
      this.#error(conn, parsed.code, parsed.message, parsed.id);
      return;
    }
    const frame = parsed.frame;
    // Here, rather than in onMessage, so the `internal` error answers the request's id.
    try {
      this.#jsonFrame(conn, frame);
    } catch (err) {
      this.#internal(conn, err, frame.id, 'handling a client message');
    }
  }

  #jsonFrame(conn: Connection, frame: ClientFrame): void {
    if (frame.type === 'ping') {
      this.#send(conn, pongFrame(frame.id));
      return;
    }
    if (frame.type === 'auth') {
      this.#jsonAuth(conn, frame);
      return;
    }
    const from = this.#node.uidOf(conn);
    const grants = conn.grants;
    if (from === undefined || grants === undefined) {
      this.#error(conn, ErrorCode.Unauthorized, 'authenticate first (send an auth frame)', frame.id);
      return;
    }
    switch (frame.type) {
      case 'send': {
        if (!this.#validName(conn, frame.to, 'uid', 'to', frame.id)) return;
        if (!canSend(grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to send to a uid', frame.id);
          return;
        }
        this.#routed(conn, frame.id, this.#node.sendToUid(frame.to, frame.data, from, frame.id !== undefined), (r) => {
          this.#events.message(conn, from, 'uid', frame.to, frame.data, r.connections);
          this.#ack(conn, frame.id, degraded(r, { online: r.online > 0, connections: r.connections }));
        });
        return;
      }
      case 'publish': {
        if (!this.#validName(conn, frame.group, 'group', 'group', frame.id)) return;
        if (!canPublish(grants, frame.group)) {
          this.#error(conn, ErrorCode.Forbidden, `no right to publish to group ${frame.group}`, frame.id);
          return;
        }
        this.#routed(conn, frame.id, this.#node.publish(frame.group, frame.data, from, frame.id !== undefined), (r) => {
          this.#events.message(conn, from, 'group', frame.group, frame.data, r.connections);
          this.#ack(conn, frame.id, degraded(r, { online: r.online, connections: r.connections }));
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(grants)) {
          this.#error(conn, ErrorCode.Forbidden, 'no right to broadcast', frame.id);
          return;
        }
        this.#routed(conn, frame.id, this.#node.broadcast(frame.data, from, frame.id !== undefined), (r) => {
          this.#events.message(conn, from, 'broadcast', undefined, frame.data, r.connections);
          this.#ack(conn, frame.id, degraded(r, { connections: r.connections }));
        });
        return;
      }
      case 'join': {
        if (!this.#validName(conn, frame.group, 'group', 'group', frame.id)) return;
        if (!canJoin(grants, frame.group)) {
          this.#error(conn, ErrorCode.Forbidden, `no right to join group ${frame.group}`, frame.id);
          return;
        }
        // A cap refuses by throwing (alone) or rejecting (in a cluster): either way the
        // client is told, and the connection carries on.
        let result: MaybePromise<boolean>;
        try {
          result = this.#node.join(frame.group, from);
        } catch (err) {
          // Anything else is a bug: the message handler's last-resort guard answers it.
          if (!isLimitExceeded(err)) throw err;
          this.#error(conn, ErrorCode.LimitExceeded, err.message, frame.id);
          return;
        }
        this.#routed(conn, frame.id, result, (joined) => {
          this.#ack(conn, frame.id, { group: frame.group, joined });
        });
        return;
      }
      case 'leave': {
        if (!this.#validName(conn, frame.group, 'group', 'group', frame.id)) return;
        this.#routed(conn, frame.id, this.#node.leave(frame.group, from), (left) => {
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
    if (this.#node.uidOf(conn) !== undefined) {
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
      this.#log.debug({ conn: conn.id, code: ErrorCode.BadRequest, reason: refusal }, 'login refused');
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
        // A promise callback: a throw here would be an unhandled rejection (process exit).
        try {
          const current = this.#node.uidOf(conn);
          if (current === undefined) this.#loginWith(conn, identity, id);
          else this.#refresh(conn, current, identity, id);
        } catch (err) {
          this.#internal(conn, err, id, 'logging in');
        }
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
      try {
        this.#dispatch(conn, data);
      } catch (err) {
        this.#internal(conn, err, undefined, 'handling a client message');
      }
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
    // The reason, never the token.
    this.#log.debug({ conn: conn.id, code: ErrorCode.Unauthorized, reason: err.message }, 'login refused');
    this.#error(conn, ErrorCode.Unauthorized, err.message, id);
    conn.close(CloseCode.Unauthorized, err.message.slice(0, 120));
  }

  #login(conn: Connection, uid: Uid, grants: Grants, expiresAt: number, id: RequestId): void {
    this.#pending.delete(conn);
    this.#limitReceive(conn, this.#options.maxMessageSize);
    conn.uid = uid;
    conn.grants = grants;
    this.#expiries.set(conn, expiresAt);
    this.#node.attach(conn, uid, (attached) => {
      // Maybe called later (a cluster subscribes first), outside the message's guard.
      try {
        this.#send(attached, attached.codec === Codec.Seed ? loginReply(uid) : welcomeFrame(uid, attached.id, id));
        this.#events.login(attached, uid);
      } catch (err) {
        this.#internal(attached, err, id, 'logging in');
      }
    });
  }

  // Replies.

  /**
   * Runs `then` with a routed result when it is ready. A failure is answered, with the
   * request's id: `unavailable` when the cluster's broker failed or did not answer in time
   * (nothing was delivered), `limit_exceeded` for a cap's refusal, `internal` for anything
   * else (a bug, logged). A `then` that
   * runs later, outside the frame's guard, gets a guard of its own: a throw in a promise
   * callback would be an unhandled rejection, which ends the process.
   */
  #routed<T>(conn: Connection, id: RequestId, result: MaybePromise<T>, then: (value: T) => void): void {
    const guarded =
      result instanceof Promise
        ? (value: T): void => {
            try {
              then(value);
            } catch (err) {
              this.#internal(conn, err, id, 'answering a client message');
            }
          }
        : then;
    whenReady(result, guarded, (err: unknown) => {
      if (conn.readyState !== Connection.OPEN) return;
      if (err instanceof UnavailableError) {
        this.#error(conn, ErrorCode.Unavailable, err.message, id);
        return;
      }
      if (isLimitExceeded(err)) {
        this.#error(conn, ErrorCode.LimitExceeded, err.message, id);
        return;
      }
      this.#internal(conn, err, id, 'routing a client message');
    });
  }

  /**
   * The last-resort answer to a throw while handling `conn`: logged, counted, and answered
   * `internal` (with the request's id); if even that fails, only this connection is closed
   * with 1011. Emits no event, so a throwing listener cannot throw again from here.
   */
  #internal(conn: Connection, err: unknown, id: RequestId, doing: string): void {
    this.#log.error({ err, conn: conn.id, uid: conn.uid }, `${doing} failed; answered internal`);
    try {
      this.#events.internalError(conn);
      if (conn.readyState !== Connection.OPEN) return;
      const text = 'internal error';
      this.#send(conn, conn.codec === Codec.Seed ? errorLine(ErrorCode.Internal, text) : errorFrame(ErrorCode.Internal, text, id));
    } catch (again) {
      this.#log.error({ err: again, conn: conn.id }, 'answering internal failed; closing the connection with 1011');
      try {
        conn.close(CloseCode.InternalError, 'internal error');
      } catch {
        conn.terminate();
      }
    }
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

  /** Checks a uid or group a v1 frame names; answers `bad_request` naming the field and rule. */
  #validName(conn: Connection, name: string, kind: NameKind, field: string, id: RequestId): boolean {
    const refusal = checkName(name, kind, this.#options.maxUidLength);
    if (refusal === undefined) return true;
    this.#error(conn, ErrorCode.BadRequest, `${field}: ${refusal}`, id);
    return false;
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
      conn.closedBy = 'server';
      this.#stats.heartbeatCloses++;
      this.#node.detach(conn);
      conn.terminate();
      return;
    }
    // Pings bypass the hub: they are not pushes, and two bytes never trip the cap.
    conn.writeFrame(PING_FRAME);
  }

  /** Sets a connection's receive limit; without ws's field, it keeps the server-wide one. */
  #limitReceive(conn: Connection, bytes: number): void {
    if (setReceiveLimit(conn, bytes) || this.#warnedReceiveLimit) return;
    this.#warnedReceiveLimit = true;
    this.#log.warn({}, 'this ws version has no per-connection receive limit: maxPreLoginMessageSize is not enforced');
  }

  #tick(now: number): void {
    // Both sets are in deadline order: each loop stops at the first that is not due.
    for (const conn of this.#pending) {
      if (now - conn.connectedAt <= this.#options.loginTimeout) break;
      this.#pending.delete(conn);
      this.#stats.heartbeatCloses++;
      conn.close(CloseCode.LoginTimeout, 'login timeout');
    }
    for (const conn of this.#closing) {
      if (conn.closeBy > now) break;
      this.#closing.delete(conn);
      this.#stats.closeGraceTerminations++;
      this.#log.debug({ conn: conn.id, uid: conn.uid }, 'close grace over: terminating');
      conn.terminate();
    }
    if (now >= this.#handshakeWindowEnds) {
      // Fixed one-second windows: the map holds the addresses of one second at most.
      this.#handshakesPerIp.clear();
      this.#handshakeWindowEnds = now + 1000;
    }
    for (const conn of this.#expiries.due(now)) {
      this.#node.detach(conn);
      conn.close(CloseCode.TokenExpired, 'token expired');
    }
  }
}

/** The body of the 400 to a handshake that offers subprotocols, none of them ours. */
const UNSUPPORTED_SUBPROTOCOL =
  `uidpush: no supported subprotocol offered; offer ${JSON_V1_SUBPROTOCOL} (JSON frames), or none (the seed text protocol)`;

/**
 * Whether a handshake may go on as far as subprotocols go: it offers none (the seed
 * protocol), or ours among others. A client that offers only others must, by RFC 6455
 * 4.1, fail a 101 that names none of them (browsers do, as a bare 1006), so it is told
 * 400 and why instead; names are compared exactly, as the RFC's tokens are.
 */
function offersOurSubprotocol(header: string | undefined): boolean {
  if (header === undefined) return true;
  return header.split(',').some((name) => name.trim() === JSON_V1_SUBPROTOCOL);
}

/** The page origin a browser sent (`Sec-WebSocket-Origin` in protocol version 8). */
function handshakeOrigin(req: IncomingMessage): string | undefined {
  const origin = req.headers.origin ?? req.headers['sec-websocket-origin'];
  // Repeated headers arrive joined or as a list: no origin matches them.
  return Array.isArray(origin) ? origin.join(', ') : origin;
}

/** An ack's fields, with `degraded: true` when only this node's clients got the message. */
function degraded(
  r: { degraded?: true },
  fields: Record<string, string | number | boolean | null>,
): Record<string, string | number | boolean | null> {
  if (r.degraded === true) fields.degraded = true;
  return fields;
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
function onError(this: WebSocket, err: Error): void {
  // ws has already started closing the connection with the matching code (1002, 1007,
  // 1008, 1009); the close listener does the cleanup. Nothing here may throw.
  if (this instanceof Connection) this.owner?.onError(this, err);
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
function refuseUpgrade(socket: Duplex, status: keyof typeof STATUS_TEXT, text: string): void {
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
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
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

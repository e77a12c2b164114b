import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import { TokenError, type Identity, type TokenVerifier } from '../../auth/jwt.js';
import { CloseCode } from '../../core/close-codes.js';
import { ErrorCode } from '../../core/errors.js';
import type { SessionNode } from '../../core/service.js';
import type { Logger } from '../../core/types.js';
import type { Hub } from '../../delivery/hub.js';
import { Codec } from '../../protocol/codec.js';
import { receiveLimits } from '../../session/limits.js';
import { Session } from '../../session/session.js';
import { Connection, type ConnectionOwner, type UpgradedSocket } from '../connection.js';
import { Liveness } from '../liveness.js';
import { Admission } from './admission.js';
import type { TransportEvents, TransportOptions, TransportStats } from './options.js';
import { FrameError } from './frame-parser.js';
import { HandshakeReader } from './handshake-reader.js';
import {
  answerClientError,
  checkHandshake,
  handshakeOrigin,
  type HandshakeRequest,
  handshakeToken,
  offersOurSubprotocol,
  refuseUpgrade,
  switchingProtocols,
  UNSUPPORTED_SUBPROTOCOL,
} from './upgrade.js';

export type { TransportEvents, TransportOptions, TransportStats } from './options.js';

/**
 * The WebSocket transport: upgrade checks and subprotocol, the handshake token, accepting
 * connections and their shared listeners, closing. What a client says goes to the
 * {@link Session}; deadlines are {@link Liveness}'s; delivery goes through the hub.
 */
export class WsTransport implements ConnectionOwner {
  readonly #hub: Hub<Connection>;
  #node: SessionNode<Connection>;
  readonly #options: TransportOptions;
  readonly #events: TransportEvents;
  readonly #log: Logger;
  readonly #session: Session<Connection>;
  readonly #liveness: Liveness;
  readonly #admission: Admission;
  readonly #reader: HandshakeReader;
  /** Upgrades waiting for their handshake token's verification: pending too. */
  #handshaking = 0;
  readonly #preLoginLimit: number;
  /** While shutting down: what each closing connection's close resolves. */
  #closeWaiters: Map<Connection, () => void> | undefined;
  #verifier: TokenVerifier | undefined;
  #nextId = 1;
  #accepting = true;

  constructor(hub: Hub<Connection>, node: SessionNode<Connection>, options: TransportOptions, events: TransportEvents, log: Logger) {
    this.#hub = hub;
    this.#node = node;
    this.#options = options;
    this.#events = events;
    this.#log = log;
    this.#preLoginLimit = receiveLimits(options).preLogin;
    this.#admission = new Admission(options);
    this.#reader = new HandshakeReader((request, socket, head) => {
      this.handleUpgrade(request, socket, head);
    }, options.loginTimeout);
    this.#session = new Session<Connection>(
      node,
      options,
      {
        loggedIn: (conn, bytes) => {
          this.#liveness.loggedIn(conn);
          conn.parser.limit = bytes;
        },
        expireAt: (conn, expiresAt) => {
          this.#liveness.expireAt(conn, expiresAt);
        },
      },
      events,
      log,
    );
    this.#liveness = new Liveness(
      options,
      log,
      (conn) => {
        this.#node.detach(conn);
      },
      (now) => {
        this.#admission.tick(now);
        this.#reader.sweep(now);
      },
    );
  }

  /** The node client sessions push through (a cluster's, once it has one); set before listening. */
  setNode(node: SessionNode<Connection>): void {
    this.#node = node;
    this.#session.setNode(node);
  }

  /** Turns token auth on; set before listening. */
  setVerifier(verifier: TokenVerifier | undefined): void {
    this.#verifier = verifier;
    this.#session.setVerifier(verifier);
  }

  /** A snapshot of the transport's counters. */
  get stats(): TransportStats {
    return {
      ...this.#session.stats,
      heartbeatCloses: this.#liveness.heartbeatCloses,
      closeGraceTerminations: this.#liveness.closeGraceTerminations,
      upgradesRefused: { ...this.#admission.refused },
    };
  }

  /** Number of open connections, logged in or not. */
  get openConnections(): number {
    return this.#liveness.size;
  }

  /**
   * Completes an HTTP upgrade request as a WebSocket, verifying a handshake token first.
   * The origin, the subprotocol offer, the caps on pending connections and the per-IP
   * limits are checked first, before any other work.
   */
  handleUpgrade(req: HandshakeRequest, socket: Duplex, head: Buffer): void {
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
    if (!offersOurSubprotocol(req)) {
      this.#log.debug({ offered: req.headers['sec-websocket-protocol'] }, 'handshake refused: no supported subprotocol');
      refuseUpgrade(socket, 400, UNSUPPORTED_SUBPROTOCOL);
      return;
    }
    // The address costs a getpeername per connect (2% of a connect's CPU): read only for
    // the per-IP limits, which are off by default. Nothing else here needs it; the
    // connection's `remoteAddress` reads it when asked.
    const ip = this.#admission.usesIp ? (socket as UpgradedSocket).remoteAddress : '';
    if (ip === undefined) {
      // The peer is already gone.
      socket.destroy();
      return;
    }
    const refusal = this.#admission.admit(ip, this.#liveness.pending.size + this.#handshaking);
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
    // not go unheard (the connection takes the socket's errors over once it upgrades).
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

  /**
   * Serves an HTTP server's connections: the handshake reader takes them first, and hands
   * node:http what it does not read itself, with the upgrade event for upgrades among them.
   * `tls`: an https server, whose connections are its 'secureConnection's.
   */
  attach(server: HttpServer, tls = false): void {
    this.#reader.install(server, tls ? 'secureConnection' : 'connection');
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
    this.#reader.destroyAll();
    const waiters = new Map<Connection, () => void>();
    this.#closeWaiters = waiters;
    const open = [...this.#liveness.all()];
    const closed = open.map(
      (conn) =>
        new Promise<void>((resolve) => {
          if (conn.readyState === Connection.CLOSED) {
            resolve();
            return;
          }
          waiters.set(conn, resolve);
          conn.close(CloseCode.GoingAway, 'server shutting down');
        }),
    );
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(closed), grace]);
    clearTimeout(timer);
    for (const conn of this.#liveness.all()) conn.terminate();
    this.#liveness.stop();
  }

  #upgrade(req: HandshakeRequest, socket: Duplex, head: Buffer, auth: Identity | TokenError | undefined, ip: string): void {
    this.#handshaking--;
    const checked = checkHandshake(req);
    if (!('key' in checked)) {
      this.#admission.release(ip);
      refuseUpgrade(socket, checked.status, checked.text, checked.headers);
      return;
    }
    // The peer sent FIN (or went) while its token was being verified: nobody to answer.
    if (!socket.readable || !socket.writable) {
      this.#admission.release(ip);
      socket.destroy();
      return;
    }
    socket.write(switchingProtocols(checked));
    const conn = new Connection(socket, checked.subprotocol ?? '', this.#preLoginLimit);
    try {
      this.#session.open(this.#accept(conn, ip, head), Date.now(), auth);
    } catch (err) {
      this.#session.internal(conn, err, 'opening a connection');
    }
  }

  #accept(conn: Connection, ip: string, head: Buffer): Connection {
    const now = Date.now();
    if (this.#admission.countsIp) conn.countedIp = ip;
    conn.id = this.#nextId++;
    conn.owner = this;
    conn.codec = conn.protocol === '' ? Codec.Seed : Codec.JsonV1;
    conn.connectedAt = now;
    conn.lastSeen = now;
    conn.start(head);
    this.#liveness.add(conn);
    this.#events.connection(conn);
    return conn;
  }

  /** @internal called by the shared message listener. */
  onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    const now = Date.now();
    conn.lastSeen = now;
    this.#session.receive(conn, data, isBinary, now);
  }

  /** @internal called when a connection starts closing, whoever closed it. */
  onClosing(conn: Connection): void {
    // At shutdown, close() waits `shutdownGrace` for everyone and terminates the rest.
    if (!this.#accepting) return;
    this.#liveness.closing(conn, Date.now());
  }

  /** @internal called when the peer broke the protocol or a limit: the connection is already closing. */
  onFrameError(conn: Connection, _closeCode: number, error: FrameError): void {
    if (error === FrameError.TooLarge) this.#session.refused(conn, ErrorCode.TooLarge);
  }

  /** @internal called by the shared close listener. */
  onClose(conn: Connection, code: number, reason: Buffer): void {
    this.#liveness.remove(conn);
    const waiter = this.#closeWaiters?.get(conn);
    if (waiter !== undefined) {
      this.#closeWaiters?.delete(conn);
      waiter();
    }
    if (conn.countedIp !== undefined) {
      this.#admission.release(conn.countedIp);
      conn.countedIp = undefined;
    }
    this.#session.closed(conn);
    // The uid may already be unbound (kick, slow consumer); report the one it had.
    this.#node.detach(conn);
    const text = reason.toString();
    this.#log.debug({ conn: conn.id, uid: conn.uid, code, reason: text, by: conn.closedBy ?? 'lost' }, 'connection closed');
    try {
      this.#events.close(conn, conn.uid, code, text);
    } catch (err) {
      this.#session.internal(conn, err, 'reporting a close');
    }
  }
}

import type { Right } from '../../auth/rights.js';
import type { ErrorCode } from '../../core/errors.js';
import type { OriginCheck } from '../../core/origins.js';
import type { UpgradeRefusal } from '../../core/service.js';
import type { Uid } from '../../core/types.js';
import type { SessionEvents } from '../../session/connection.js';
import type { Connection } from '../connection.js';

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
export interface TransportEvents extends SessionEvents<Connection> {
  connection(conn: Connection): void;
  close(conn: Connection, uid: Uid | undefined, code: number, reason: string): void;
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

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Grants } from '../auth/rights.js';
import type { Payload, Uid } from '../core/types.js';
import type { ConnectionInbox, Recipient } from '../delivery/hub.js';
import { encodeCloseFrame, encodePongFrame, encodeTextFrame } from '../delivery/ws-frame.js';
import { Codec } from '../protocol/codec.js';
import type { SessionConnection } from '../session/connection.js';
import type { ConnectionInfo } from './connection-info.js';
import { FrameParser, type FrameError, type FrameSink } from './ws/frame-parser.js';

/** A zero-length write: its callback marks the end of everything written before it. */
const EMPTY = Buffer.alloc(0);

/** The socket's back-reference to its connection, so shared listeners find it from `this`. */
const kConnection = Symbol('uidpush.connection');

/**
 * The stream under a connection: node:http upgrades a net.Socket (a tls.TLSSocket over
 * TLS), but a program may hand `WsTransport.handleUpgrade` any Duplex, as ws allowed.
 */
export type UpgradedSocket = Duplex & Partial<Pick<Socket, 'remoteAddress' | 'setNoDelay' | 'setTimeout'>>;

/** A socket carrying a connection. */
type ConnectionSocket = UpgradedSocket & { [kConnection]?: Connection | undefined };

/** The states of a connection, numbered as the WebSocket API's readyState. */
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * The per-connection hooks the transport supplies. One object is shared by every
 * connection, so a connection costs one reference, not a set of closures.
 */
export interface ConnectionOwner {
  write(conn: Connection, frame: Buffer): boolean;
  onMessage(conn: Connection, data: Buffer, isBinary: boolean): void;
  onClose(conn: Connection, code: number, reason: Buffer): void;
  /** The connection has started closing (its close frame is sent or queued). */
  onClosing(conn: Connection): void;
  /** The peer broke the protocol or a limit; the connection is already closing with `closeCode`. */
  onFrameError(conn: Connection, closeCode: number, error: FrameError): void;
}

/**
 * One client connection, the server side of RFC 6455 over the socket node:http hands
 * over at `upgrade`: the few fields uidpush needs, the frame parser's state, and the
 * socket. The fields are plain numbers; the socket's listeners are shared functions (see
 * {@link Connection.start}), so a connection costs no timers, closures or emitters.
 */
export class Connection implements FrameSink, Recipient, ConnectionInfo, SessionConnection {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSING = CLOSING;
  static readonly CLOSED = CLOSED;

  /** The WebSocket state: OPEN from the 101 on, CLOSING once either side started closing, then CLOSED. */
  readyState: number = OPEN;
  /** The subprotocol chosen at the handshake; '' for none. */
  readonly protocol: string;
  /** The TCP (or TLS) socket under the WebSocket, from the upgrade. */
  readonly tcp: UpgradedSocket;
  /** Parses what the peer sends; its `limit` is the receive limit. */
  readonly parser: FrameParser;
  id = 0;
  uid: Uid | undefined = undefined;
  codec: Codec = Codec.Seed;
  /** What the connection may do; undefined until it has logged in. */
  grants: Grants | undefined = undefined;
  /** When its token expires, in ms since the epoch; 0 for never. */
  expiresAt = 0;
  /** Messages held while a token is being verified, replayed in order after. */
  held: Buffer[] | undefined = undefined;
  connectedAt = 0;
  /** Last time any frame (message, ping or pong) arrived, in ms since the epoch. */
  lastSeen = 0;
  /** Rate-limit credit left (messages), and when it was last counted. */
  credit = 0;
  creditAt = 0;
  /** Whether pushes reach it: set by the node once its login reply may be sent. */
  attached = false;
  /** Until when rate-limit notices are not repeated. */
  quietUntil = 0;
  /** The heartbeat slot this connection lives in. */
  slot = 0;
  /** Kept by the hub's write coalescing. */
  writeTurn = 0;
  /** When a closing connection's socket is destroyed if the peer has not closed it, in ms since the epoch. */
  closeBy = 0;
  /** The IP address this connection is counted under for the per-IP limit, if it is on. */
  countedIp: string | undefined = undefined;
  /** Who started the close: set once closing starts; undefined for a socket that just went away. */
  closedBy: 'server' | 'client' | undefined = undefined;
  owner: ConnectionOwner | undefined = undefined;
  /** Its place in the uid's inbox (v1, inbox on); set by the node at login. */
  inbox: ConnectionInbox | undefined = undefined;
  /** The close code reported at close: the peer's (1005 for none), 1006 without a close frame. */
  #closeCode = 1006;
  #closeReason: Buffer = EMPTY;
  #closeFrameSent = false;
  #closeFrameReceived = false;
  /** Whether the parser refused the stream: the close then ends the socket without waiting for the peer's close frame. */
  #errored = false;

  /**
   * @param tcp - the upgraded socket, the 101 already written to it.
   * @param protocol - the subprotocol the 101 named, '' for none.
   * @param limit - the receive limit to start with, in bytes.
   */
  constructor(tcp: UpgradedSocket, protocol: string, limit: number) {
    this.tcp = tcp;
    this.protocol = protocol;
    this.parser = new FrameParser(this, limit);
  }

  /**
   * Starts reading: what came with the upgrade request (`head`) first, then the socket.
   * Call once the owner is set. As ws does: no socket timeout (liveness judges the
   * peer) and no Nagle delay.
   */
  start(head: Buffer): void {
    const tcp = this.tcp as ConnectionSocket;
    tcp[kConnection] = this;
    // A bare Duplex handed to WsTransport.handleUpgrade has neither.
    if (typeof tcp.setTimeout === 'function') tcp.setTimeout(0);
    if (typeof tcp.setNoDelay === 'function') tcp.setNoDelay();
    if (head.length > 0) tcp.unshift(head);
    tcp.on('close', socketOnClose);
    tcp.on('data', socketOnData);
    tcp.on('end', socketOnEnd);
    tcp.on('error', socketOnError);
    // The handshake reader leaves the socket paused until now; node:http leaves it to flow
    // on the first 'data' listener, which resume() does the same.
    tcp.resume();
  }

  get remoteAddress(): string | undefined {
    return this.tcp.remoteAddress;
  }

  get bufferedBytes(): number {
    return this.tcp.writableLength;
  }

  get isOpen(): boolean {
    return this.readyState === OPEN;
  }

  /** Sends a reply through the hub, under the send-buffer cap of any push. */
  sendText(text: string): void {
    this.owner?.write(this, encodeTextFrame(text));
  }

  /** Once the socket has drained its write buffer, or closed: what a replay page waits for. */
  onDrain(listener: () => void): void {
    const tcp = this.tcp;
    if (tcp.destroyed || tcp.writableEnded || tcp.writableLength === 0) {
      listener();
      return;
    }
    let called = false;
    const once = (): void => {
      if (called) return;
      called = true;
      tcp.off('close', once);
      listener();
    };
    // Not 'drain': a socket emits it only after a write that returned false (past its
    // highWaterMark, 16 KiB), so with less than that buffered it never comes. The callback
    // of an empty write is called once everything written before it is flushed.
    tcp.write(EMPTY, once);
    tcp.on('close', once);
  }

  cork(): void {
    this.tcp.cork();
  }

  uncork(): void {
    this.tcp.uncork();
  }

  /** Stops reading from the peer; messages of a chunk already read still arrive. */
  pause(): void {
    if (this.readyState === CLOSED) return;
    this.tcp.pause();
  }

  resume(): void {
    if (this.readyState === CLOSED) return;
    this.tcp.resume();
  }

  /**
   * Writes a complete frame. Frames are written whole, each in one write (or a corked
   * run), so frames from the hub, pongs and the close frame never interleave mid-frame.
   */
  writeFrame(frame: Buffer): boolean {
    if (this.readyState !== OPEN) return false;
    this.tcp.write(frame);
    return true;
  }

  /**
   * Starts the closing handshake, which every close goes through: the program's, the
   * hub's (kick, slow consumer), the transport's (login timeout, token expiry), a refused
   * frame's (1002, 1007, 1008, 1009) and the echo of a client's close. The socket is ended
   * once both close frames have passed; until then the owner bounds how long the peer may
   * take to answer (`closeGrace`), with no timer of the connection's own.
   *
   * @param code - omitted: an empty close frame.
   * @throws TypeError for a code a close frame may not carry, RangeError for a reason over
   *   123 bytes (the state is unchanged), as ws does.
   */
  close(code?: number, reason?: string | Buffer): void {
    if (this.readyState === CLOSED) return;
    if (this.readyState === CLOSING) {
      if (this.#closeFrameSent && (this.#closeFrameReceived || this.#errored)) this.tcp.end();
      return;
    }
    const frame = encodeCloseFrame(code, reason);
    this.readyState = CLOSING;
    if (!this.tcp.destroyed) {
      this.tcp.write(frame);
      this.#closeFrameSent = true;
      // end() flushes the close frame before the FIN.
      if (this.#closeFrameReceived || this.#errored) this.tcp.end();
    }
    this.closedBy ??= this.#closeFrameReceived ? 'client' : 'server';
    this.owner?.onClosing(this);
  }

  /** Destroys the socket at once: no close frame; the close reports 1006 unless the peer's close frame came. */
  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this.tcp.destroy();
  }

  push(payload: Payload): boolean {
    return this.owner?.write(this, encodeTextFrame(payload)) ?? false;
  }

  /** @internal the parser's report; the owner stamps `lastSeen`, with the time it needs anyway. */
  onFrameMessage(data: Buffer, isBinary: boolean): void {
    this.owner?.onMessage(this, data, isBinary);
  }

  /** @internal the parser's report: a ping is answered with its payload while open. */
  onFramePing(data: Buffer): void {
    this.lastSeen = Date.now();
    if (this.readyState === OPEN) this.tcp.write(encodePongFrame(data));
  }

  /** @internal the parser's report: liveness is judged by pongs to the server's own pings. */
  onFramePong(): void {
    this.lastSeen = Date.now();
  }

  /** @internal the parser's report: the peer's close frame is echoed, and the socket ended. */
  onFrameClose(code: number, reason: Buffer): void {
    this.lastSeen = Date.now();
    this.#closeFrameReceived = true;
    this.#closeCode = code;
    // A copy, not pooled: a view or a pool slice would keep a larger buffer alive.
    if (reason.length > 0) {
      this.#closeReason = Buffer.allocUnsafeSlow(reason.length);
      this.#closeReason.set(reason);
    }
    // What follows the close frame is discarded: read on, so the peer's FIN is seen.
    this.tcp.resume();
    if (code === 1005) this.close();
    else this.close(code, this.#closeReason);
  }

  /** @internal the parser's report: closed with the error's code, and the owner told. */
  onFrameError(closeCode: number, error: FrameError): void {
    this.#errored = true;
    this.tcp.resume();
    this.close(closeCode);
    this.owner?.onFrameError(this, closeCode, error);
  }

  /** The socket closed: every path ends here, once. */
  #closed(): void {
    this.readyState = CLOSED;
    this.owner?.onClose(this, this.#closeCode, this.#closeReason);
  }

  /** @internal called by the shared socket 'close' listener. */
  static closed(conn: Connection): void {
    conn.#closed();
  }
}

// Shared socket listeners: `this` is the socket, its connection found through kConnection.
function socketOnData(this: ConnectionSocket, chunk: Buffer): void {
  this[kConnection]?.parser.push(chunk);
}

/** The peer's FIN without a close frame (or after it): ends our side too, as ws does. */
function socketOnEnd(this: ConnectionSocket): void {
  const conn = this[kConnection];
  if (conn !== undefined && conn.readyState === OPEN) conn.readyState = CLOSING;
  this.end();
}

function socketOnClose(this: ConnectionSocket): void {
  const conn = this[kConnection];
  this.removeListener('close', socketOnClose);
  this.removeListener('data', socketOnData);
  this.removeListener('end', socketOnEnd);
  if (conn === undefined) return;
  this[kConnection] = undefined;
  if (conn.readyState === OPEN) conn.readyState = CLOSING;
  // A paused socket may still hold what the peer sent before it went: parsed now, as ws
  // does, so messages read before the close are not lost.
  if (!this.readableEnded && !conn.parser.done && this.readableLength > 0) {
    const rest = this.read(this.readableLength) as Buffer | null;
    if (rest !== null) conn.parser.push(rest);
  }
  Connection.closed(conn);
}

/** A socket error: the socket is destroyed ('close' follows); nothing throws, no other connection is touched. */
function socketOnError(this: ConnectionSocket): void {
  this.removeListener('error', socketOnError);
  this.on('error', noop);
  const conn = this[kConnection];
  if (conn !== undefined && conn.readyState === OPEN) conn.readyState = CLOSING;
  this.destroy();
}

function noop(): void {
  // Errors after the first: the socket is already being destroyed.
}

import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { Grants } from '../auth/rights.js';
import type { Payload, Uid } from '../core/types.js';
import type { ConnectionInbox, Recipient } from '../delivery/hub.js';
import { encodeTextFrame } from '../delivery/ws-frame.js';
import { Codec } from '../protocol/codec.js';
import type { SessionConnection } from '../session/connection.js';
import type { ConnectionInfo } from './connection-info.js';

/** A zero-length write: its callback marks the end of everything written before it. */
const EMPTY = Buffer.alloc(0);

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
  /** ws reported an error; it is already closing the connection. */
  onError(conn: Connection, err: Error): void;
}

/**
 * One client connection: ws's WebSocket with the few fields uidpush needs stored on the
 * object itself (ws builds it through the server's `WebSocket` option), so a connection
 * is one object plus its socket. The fields are plain numbers: no per-connection timers
 * or closures.
 */
export class Connection extends WebSocket implements Recipient, ConnectionInfo, SessionConnection {
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
  /**
   * The TCP socket under the WebSocket, taken from the upgrade request. Frames that are
   * already built go straight to it: ws writes each of its own frames atomically (cork or
   * one write) and per-message deflate is off, so writes never interleave mid-frame.
   */
  tcp: Socket | undefined = undefined;

  get remoteAddress(): string | undefined {
    return this.tcp?.remoteAddress;
  }

  get bufferedBytes(): number {
    return this.bufferedAmount;
  }

  get isOpen(): boolean {
    return this.readyState === WebSocket.OPEN;
  }

  /** Sends a reply through the hub, under the send-buffer cap of any push. */
  sendText(text: string): void {
    this.owner?.write(this, encodeTextFrame(text));
  }

  /** Once the socket has drained its write buffer, or closed: what a replay page waits for. */
  onDrain(listener: () => void): void {
    const tcp = this.tcp;
    if (tcp === undefined || tcp.destroyed || tcp.writableEnded || tcp.writableLength === 0) {
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
    this.tcp?.cork();
  }

  uncork(): void {
    this.tcp?.uncork();
  }

  writeFrame(frame: Buffer): boolean {
    if (this.readyState !== WebSocket.OPEN || this.tcp === undefined) return false;
    this.tcp.write(frame);
    return true;
  }

  /**
   * ws's close, which every close goes through: the program's, the hub's (kick, slow
   * consumer), the transport's (login timeout, token expiry) and ws's own (1002, 1007,
   * 1009, the echo of a client's close). The owner then bounds how long the peer may take
   * to answer, which ws would leave at its 30 s close timeout.
   */
  override close(code?: number, data?: string | Buffer): void {
    const wasOpen = this.readyState === WebSocket.OPEN;
    super.close(code, data);
    // Read again: close() changed it (TypeScript would keep the narrowing from above).
    const now: number = this.readyState;
    if (wasOpen && now === WebSocket.CLOSING) {
      // ws echoes a client's close frame through here, once it has read it.
      this.closedBy ??= (this as unknown as { _closeFrameReceived?: boolean })._closeFrameReceived === true ? 'client' : 'server';
      this.owner?.onClosing(this);
    }
  }

  push(payload: Payload): boolean {
    return this.owner?.write(this, encodeTextFrame(payload)) ?? false;
  }
}

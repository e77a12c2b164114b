// The connection types the published declarations show. They import nothing of ws, so a
// program that installs uidpush type-checks without @types/ws (a devDependency here).
import type { Payload, Uid } from '../core/types.js';
import type { Recipient } from '../delivery/hub.js';

/**
 * A client connection as the embedding program sees it in events.
 */
export interface ConnectionInfo {
  /** A number unique to this connection within the process. */
  readonly id: number;
  /** The uid this connection logged in as; undefined before login. */
  readonly uid: Uid | undefined;
  /** The WebSocket subprotocol: `uidpush.v1`, or '' for the seed text protocol. */
  readonly protocol: string;
  /** The peer's IP address, as seen by the socket; undefined once the socket is gone. */
  readonly remoteAddress: string | undefined;
  /** When the connection was accepted, in ms since the epoch. */
  readonly connectedAt: number;
  /** Bytes waiting to be sent on this connection: written, not yet handed to the kernel. */
  readonly bufferedBytes: number;
  /**
   * Pushes a text message to this one connection, under the same send-buffer cap as any
   * push. Returns whether it was written.
   */
  push(payload: Payload): boolean;
  /** Closes the connection with a close code and reason. */
  close(code?: number, reason?: string): void;
}

/**
 * A connection as the hub sees it: what the program sees plus what the hub writes through.
 * The hub is typed by it, not by the transport's `Connection`, so that `server.hub` is
 * declared without the transport's types; at run time every one of them is a `Connection`.
 */
export type HubConnection = ConnectionInfo & Recipient;

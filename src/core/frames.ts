import type { ErrorCode } from './errors.js';
import type { JsonValue, Uid } from './types.js';

/**
 * Every frame the server sends in uidpush.v1 (docs/protocol.md), as a client parses it: the
 * server's frame builders (protocol/json-v1.ts) are typed by it, and a client (the browser
 * SDK) reads frames through it. Browser-safe, like the rest of `core`.
 */

/** A request id as a client may send it, echoed in the reply: a string or a safe integer. */
export type FrameId = string | number;

/** Where a message was addressed: one uid, a group, or every connection. */
export type Scope = 'uid' | 'group' | 'broadcast';

/** Sent once the connection is authenticated (and its uid reachable from every node). */
export interface WelcomeFrame {
  readonly type: 'welcome';
  readonly uid: Uid;
  /** The connection's id on its server. */
  readonly connectionId: number;
  /** The id of the `auth` frame it answers; absent for a handshake token. */
  readonly id?: FrameId;
  /** With the inbox on (docs/delivery.md): this connection's device, named in `auth` or made up here for the client to keep. */
  readonly device?: string;
  /** The uid's inbox position now: the replay, if any, follows this frame and ends at it. */
  readonly inbox?: { readonly epoch: string; readonly offset: number };
  /** The highest offset this device acked (its starting point, for a device new to the inbox). */
  readonly cursor?: number;
  /** Whether every message the device missed is replayed after this frame. */
  readonly recovered?: boolean;
  /** How many messages are replayed (0 when not recovered). */
  readonly missed?: number;
  /** Why not recovered: `epoch_changed` (the inbox is not the one the position was in) or `expired` (missed messages are no longer retained). */
  readonly reason?: 'epoch_changed' | 'expired';
}

/** A push to this connection: to its uid, to a group it is a member of, or to everyone. */
export interface MessageFrame {
  readonly type: 'message';
  readonly scope: Scope;
  /** The sending client's uid; null when the server (its API, the program) sent it. */
  readonly from: Uid | null;
  /** The uid or group it was addressed to; null for a broadcast. */
  readonly to: string | null;
  readonly data: JsonValue;
  /** A retained push: its place in the uid's inbox; absent for ephemeral pushes, group pushes and broadcasts. */
  readonly offset?: number;
  readonly epoch?: string;
  /** A `latest:<key>` push: its key. */
  readonly key?: string;
}

/**
 * The server resynchronised this connection with the uid's inbox in band: the inbox has a
 * new epoch (`epoch_changed`: positions of the old one mean nothing), or messages the
 * connection missed live are no longer retained (`expired`). Live messages follow, from
 * `inbox`.
 */
export interface ResyncFrame {
  readonly type: 'resync';
  readonly recovered: false;
  readonly reason: 'epoch_changed' | 'expired';
  readonly inbox: { readonly epoch: string; readonly offset: number };
}
/** The result of a request that carried an id. */
export interface AckFrame {
  readonly type: 'ack';
  readonly id?: FrameId;
  readonly result: Readonly<Record<string, JsonValue>>;
}

/** A refused request; the connection stays open unless a close follows. */
export interface ErrorFrame {
  readonly type: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly id?: FrameId;
}

/** The answer to a `ping` frame. */
export interface PongFrame {
  readonly type: 'pong';
  readonly id?: FrameId;
}

/** Any frame the server sends on a uidpush.v1 connection. */
export type ServerFrame = WelcomeFrame | MessageFrame | ResyncFrame | AckFrame | ErrorFrame | PongFrame;

/**
 * The JSON text of a frame of type `F`: a string, marked with the frame it encodes so that
 * a builder cannot return another frame's text unnoticed. The mark exists only for the
 * type checker.
 */
export type FrameJson<F extends ServerFrame> = string & { readonly __frame?: F };

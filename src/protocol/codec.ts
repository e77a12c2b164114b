import type { ErrorCode } from '../core/errors.js';
import type { InboxWelcome } from '../core/inbox.js';
import type { JsonValue } from '../core/types.js';
import { ackFrame, errorFrame, pongFrame, welcomeFrame } from './json-v1.js';
import { errorLine, loginReply } from './seed-text.js';

/**
 * The wire protocols a connection can speak, chosen at the handshake by the WebSocket
 * subprotocol: none for the seed text protocol, `uidpush.v1` for JSON frames. Numbers, so
 * a connection stores its codec in one small field.
 */
export const Codec = {
  Seed: 0,
  JsonV1: 1,
} as const;

/** One of {@link Codec}. */
export type Codec = (typeof Codec)[keyof typeof Codec];

/** The subprotocol name of the JSON protocol. */
export const JSON_V1_SUBPROTOCOL = 'uidpush.v1';

/** Picks the codec for the subprotocols a client offers; undefined: no subprotocol header. */
export function negotiate(offered: ReadonlySet<string>): { codec: Codec; subprotocol: string | undefined } {
  if (offered.has(JSON_V1_SUBPROTOCOL)) return { codec: Codec.JsonV1, subprotocol: JSON_V1_SUBPROTOCOL };
  return { codec: Codec.Seed, subprotocol: undefined };
}

/** A request id a reply echoes (uidpush.v1); undefined when the request had none. */
type ReplyId = string | number | undefined;

/**
 * What a client session says to a client, in one protocol: one object per protocol, the
 * same shape for each, so the session never branches on the protocol to answer.
 */
export interface ProtocolCodec {
  /** The reply to a successful login; `inbox`: the device's place in the uid's inbox (v1 only). */
  loginReply(uid: string, connectionId: number, requestId: ReplyId, inbox?: InboxWelcome): string;
  /** A refused request; the connection stays open unless a close follows. */
  error(code: ErrorCode, text: string, requestId: ReplyId): string;
  /** The result of a request; undefined when the protocol has no acknowledgements (seed). */
  ack(requestId: ReplyId, result: Readonly<Record<string, JsonValue>>): string | undefined;
  /** The answer to a client's ping frame; undefined when the protocol has none (seed). */
  pong(requestId: ReplyId): string | undefined;
}

/** The seed text protocol's replies. */
export const seedCodec: ProtocolCodec = {
  loginReply: (uid) => loginReply(uid),
  error: (code, text) => errorLine(code, text),
  ack: () => undefined,
  pong: () => undefined,
};

/** uidpush.v1's replies. */
export const jsonV1Codec: ProtocolCodec = {
  loginReply: (uid, connectionId, requestId, inbox) => welcomeFrame(uid, connectionId, requestId, inbox),
  error: (code, text, requestId) => errorFrame(code, text, requestId),
  ack: (requestId, result) => ackFrame(requestId, result),
  pong: (requestId) => pongFrame(requestId),
};

const CODECS: readonly [ProtocolCodec, ProtocolCodec] = [seedCodec, jsonV1Codec];

/** The replies of the protocol `codec` names. */
export function codecOf(codec: Codec): ProtocolCodec {
  return CODECS[codec];
}

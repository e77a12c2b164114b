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

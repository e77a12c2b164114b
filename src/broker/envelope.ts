import { fitsCloseReason } from '../core/close-codes.js';
import type { Group, JsonValue, Uid } from '../core/types.js';

/**
 * What nodes tell each other. Every envelope is JSON with `v` (the format version) and
 * `node` (the sender's id, so a node ignores its own). Unknown `t` values are logged and
 * ignored by the receiver, so nodes can be upgraded one at a time.
 */
export type Envelope =
  | ({ t: 'push'; uid: Uid; data: JsonValue; from: Uid | null } & Expiring & Retained)
  | ({ t: 'publish'; group: Group; data: JsonValue; from: Uid | null } & Expiring)
  | ({ t: 'broadcast'; data: JsonValue; from: Uid | null } & Expiring)
  | { t: 'kick'; uid: Uid; reason: string }
  /** A token cut-off, on the broadcast channel: every node must know it, not only the uid's. */
  | { t: 'revoke'; uid: Uid; before: number; until: number }
  /**
   * With `ref`, the sender waits for a `joined` from each node holding the uid, sent to the
   * sender's node channel once that node has subscribed to the group's channel.
   */
  | { t: 'join'; group: Group; uid: Uid; ref?: string }
  | { t: 'joined'; ref: string }
  | { t: 'leave'; group: Group; uid: Uid }
  /** A device of `uid` acked up to `upTo`, on the uid's receipts channel: for pushes that await acks. */
  | { t: 'acked'; uid: Uid; device: string; upTo: number };

/**
 * A retained push carries its place in the uid's inbox (`off` in epoch `ep`) and, for
 * `latest:<key>`, its key. Sent by the inbox store itself, so a node also receives its own
 * retained pushes, in offset order with everyone else's.
 */
export interface Retained {
  off?: number;
  ep?: string;
  key?: string;
}

/**
 * A push carries when it stops being worth delivering: `exp`, the sender's clock in ms since
 * the epoch, plus its broker timeout. A receiving node drops a push whose `exp` has passed,
 * so a push that waited in a stalled broker is never delivered late (node clocks must be
 * NTP-synced). Optional: envelopes without it (older nodes) are delivered whatever their age.
 */
export interface Expiring {
  exp?: number;
}

/** The format version this build writes and reads. */
export const ENVELOPE_VERSION = 1;

/**
 * Channel names: one per uid and per group (subscribed by interest), one for everyone, and
 * one per node (for answers to that node).
 */
export const channel = {
  /**
   * In braces: Redis Cluster hashes only the `{...}` part, so the uid's channel and its
   * inbox keys share a slot and one script appends and publishes.
   */
  uid: (uid: Uid): string => `uidpush:u:{${hashTag(uid)}}`,
  group: (group: Group): string => `uidpush:g:${group}`,
  node: (node: string): string => `uidpush:n:${node}`,
  /** Acks of a uid's devices, subscribed while a push to the uid awaits them. */
  receipts: (uid: Uid): string => `uidpush:r:{${hashTag(uid)}}`,
  all: 'uidpush:all',
} as const;

/**
 * A uid as the `{...}` hash tag of its channels and inbox keys. Redis ends a tag at the
 * first `}`, so a `}` in the uid (which may never hold `:`) becomes `:`: one-to-one, and
 * never an empty tag (a uid starting with `}` would make `{}`, and Redis would hash the
 * whole name, putting the channel and the keys in different slots).
 */
export function hashTag(uid: Uid): string {
  return uid.includes('}') ? uid.replaceAll('}', ':') : uid;
}

/** Serialises an envelope once, for every node it goes to. */
export function encodeEnvelope(node: string, env: Envelope): string {
  return JSON.stringify({ v: ENVELOPE_VERSION, node, ...env });
}

/**
 * The push envelopes of one push to several uids: `data` and `from` are serialised once
 * and spliced into each uid's envelope, not once per uid. The same JSON as
 * {@link encodeEnvelope} gives for each.
 */
export function encodePushes(
  node: string,
  uids: readonly Uid[],
  data: JsonValue,
  from: Uid | null,
  exp?: number,
): [uid: Uid, envelope: string][] {
  const head = `{"v":${String(ENVELOPE_VERSION)},"node":${JSON.stringify(node)},"t":"push","uid":`;
  const expiry = exp === undefined ? '' : `,"exp":${String(exp)}`;
  const tail = `,"data":${JSON.stringify(data)},"from":${JSON.stringify(from)}${expiry}}`;
  return uids.map((uid) => [uid, head + JSON.stringify(uid) + tail]);
}

/**
 * A retained push to `uid` without its offset and epoch, which the inbox store splices in
 * (see RetainedEnvelope in broker.ts): `dataJson` is serialised once per push.
 */
export function encodeRetainedPush(
  node: string,
  uid: Uid,
  dataJson: string,
  from: Uid | null,
  key: string | undefined,
  exp: number | undefined,
): { before: string; after: string } {
  const keyPart = key === undefined ? '' : `,"key":${JSON.stringify(key)}`;
  const expiry = exp === undefined ? '' : `,"exp":${String(exp)}`;
  return {
    before: `{"v":${String(ENVELOPE_VERSION)},"node":${JSON.stringify(node)},"t":"push","uid":${JSON.stringify(uid)},"off":`,
    after: `,"data":${dataJson},"from":${JSON.stringify(from)}${keyPart}${expiry}}`,
  };
}

/** A decoded envelope and its sender, or why it was not understood. */
export type Decoded = { ok: true; node: string; env: Envelope } | { ok: false; reason: string };

function nonEmpty(value: unknown): boolean {
  return typeof value === 'string' && value !== '';
}

/** Parses an envelope and checks its fields; never throws. */
export function decodeEnvelope(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not an object' };
  const e = value as Record<string, unknown>;
  if (e.v !== ENVELOPE_VERSION) return { ok: false, reason: `unknown version ${String(e.v)}` };
  if (typeof e.node !== 'string') return { ok: false, reason: 'no node id' };
  // Checked by hand, not by a schema library: this runs once per message a node receives.
  const data = e.data !== undefined;
  const from = e.from === undefined || e.from === null || typeof e.from === 'string';
  const exp = e.exp === undefined || (typeof e.exp === 'number' && Number.isFinite(e.exp));
  let fits: boolean;
  switch (e.t) {
    case 'push':
      fits =
        nonEmpty(e.uid) &&
        data &&
        from &&
        exp &&
        (e.off === undefined || (Number.isSafeInteger(e.off) && (e.off as number) > 0 && nonEmpty(e.ep))) &&
        (e.key === undefined || typeof e.key === 'string');
      break;
    case 'publish':
      fits = nonEmpty(e.group) && data && from && exp;
      break;
    case 'broadcast':
      fits = data && from && exp;
      break;
    case 'kick':
      fits = nonEmpty(e.uid) && typeof e.reason === 'string' && fitsCloseReason(e.reason);
      break;
    case 'revoke':
      fits = nonEmpty(e.uid) && Number.isFinite(e.before) && Number.isFinite(e.until);
      break;
    case 'join':
      fits = nonEmpty(e.group) && nonEmpty(e.uid) && (e.ref === undefined || nonEmpty(e.ref));
      break;
    case 'joined':
      fits = nonEmpty(e.ref);
      break;
    case 'leave':
      fits = nonEmpty(e.group) && nonEmpty(e.uid);
      break;
    case 'acked':
      fits = nonEmpty(e.uid) && nonEmpty(e.device) && Number.isSafeInteger(e.upTo);
      break;
    default:
      return { ok: false, reason: `unknown type ${String(e.t)}` };
  }
  if (!fits) return { ok: false, reason: `malformed ${e.t}` };
  e.from ??= null;
  return { ok: true, node: e.node, env: e as unknown as Envelope };
}

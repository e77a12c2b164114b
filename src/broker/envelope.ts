import type { Group, JsonValue, Uid } from '../core/types.js';

/**
 * What nodes tell each other. Every envelope is JSON with `v` (the format version) and
 * `node` (the sender's id, so a node ignores its own). Unknown `t` values are logged and
 * ignored by the receiver, so nodes can be upgraded one at a time.
 */
export type Envelope =
  | { t: 'push'; uid: Uid; data: JsonValue; from: Uid | null }
  | { t: 'publish'; group: Group; data: JsonValue; from: Uid | null }
  | { t: 'broadcast'; data: JsonValue; from: Uid | null }
  | { t: 'kick'; uid: Uid; reason: string }
  | { t: 'join'; group: Group; uid: Uid }
  | { t: 'leave'; group: Group; uid: Uid };

/** The format version this build writes and reads. */
export const ENVELOPE_VERSION = 1;

/** Channel names: one per uid and per group (subscribed by interest), one for everyone. */
export const channel = {
  uid: (uid: Uid): string => `uidpush:u:${uid}`,
  group: (group: Group): string => `uidpush:g:${group}`,
  all: 'uidpush:all',
} as const;

/** Serialises an envelope once, for every node it goes to. */
export function encodeEnvelope(node: string, env: Envelope): string {
  return JSON.stringify({ v: ENVELOPE_VERSION, node, ...env });
}

/** A decoded envelope and its sender, or why it was not understood. */
export type Decoded = { ok: true; node: string; env: Envelope } | { ok: false; reason: string };

const KNOWN = new Set(['push', 'publish', 'broadcast', 'kick', 'join', 'leave']);

/** Parses an envelope; never throws. */
export function decodeEnvelope(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { ok: false, reason: 'not an object' };
  const { v, node, t } = value as { v?: unknown; node?: unknown; t?: unknown };
  if (v !== ENVELOPE_VERSION) return { ok: false, reason: `unknown version ${String(v)}` };
  if (typeof node !== 'string') return { ok: false, reason: 'no node id' };
  if (typeof t !== 'string' || !KNOWN.has(t)) return { ok: false, reason: `unknown type ${String(t)}` };
  return { ok: true, node, env: value as Envelope };
}

import type { Uid } from './types.js';
import { utf8ByteLength } from './utf8.js';

/**
 * The per-user inbox (docs/delivery.md): what every engine, the node, the protocol and the
 * API share. One inbox per uid, shared by every device of that user; each retained push
 * gets the next `offset` (from 1, a safe integer) in the inbox's `epoch` (random, >= 8
 * characters; a new epoch means "not the inbox you read"). Browser-safe, like all of core.
 */

/** A place in a uid's inbox: the last offset seen (0: none yet) in an epoch. */
export interface InboxPosition {
  readonly epoch: string;
  readonly offset: number;
}

/**
 * How a push is delivered:
 * - `durable`: retained in the uid's inbox, replayed to devices that missed it;
 * - `ephemeral`: at most once, to the connections open now, never retained;
 * - `latest`: retained, but only the newest push of each `key` is kept and replayed.
 */
export type DeliveryClass =
  { readonly kind: 'durable' } | { readonly kind: 'ephemeral' } | { readonly kind: 'latest'; readonly key: string };

export const DURABLE: DeliveryClass = { kind: 'durable' };
export const EPHEMERAL: DeliveryClass = { kind: 'ephemeral' };

/** Longest `latest:<key>` key, and longest `idempotencyKey`, in UTF-8 bytes. */
export const MAX_INBOX_KEY_BYTES = 128;
/** Longest device name, in UTF-8 bytes. */
export const MAX_DEVICE_BYTES = 64;
/** The longest a push may `await` acks, in ms. */
export const MAX_AWAIT_MS = 30_000;
/** The most acks a push may `await`. */
export const MAX_AWAIT_ACKS = 64;

/** Whether a push of this class is retained. */
export function isRetained(delivery: DeliveryClass): boolean {
  return delivery.kind !== 'ephemeral';
}

/**
 * Parses a delivery class as the API, the CLI and v1 `send` take it: `durable`,
 * `ephemeral` or `latest:<key>`. Returns the class, or why it is refused.
 */
export function parseDelivery(text: string): DeliveryClass | string {
  if (text === 'durable') return DURABLE;
  if (text === 'ephemeral') return EPHEMERAL;
  if (text.startsWith('latest:')) {
    const key = text.slice('latest:'.length);
    const refusal = checkInboxKey(key, 'latest key');
    return refusal ?? { kind: 'latest', key };
  }
  return `unknown delivery class ${JSON.stringify(text.slice(0, 40))} (durable, ephemeral or latest:<key>)`;
}

/** The delivery class as text: what {@link parseDelivery} reads. */
export function deliveryText(delivery: DeliveryClass): string {
  return delivery.kind === 'latest' ? `latest:${delivery.key}` : delivery.kind;
}

/** Why a key (`latest:<key>`, `idempotencyKey`) is refused, or undefined. */
export function checkInboxKey(key: string, what: string): string | undefined {
  if (key.length === 0) return `${what} is empty`;
  if (utf8ByteLength(key) > MAX_INBOX_KEY_BYTES) return `${what} is over ${String(MAX_INBOX_KEY_BYTES)} bytes`;
  return undefined;
}

/** Why a device name is refused, or undefined: 1-64 bytes of letters, digits and `-_.:`. */
export function checkDevice(device: string): string | undefined {
  if (device.length === 0) return 'device is empty';
  if (device.length > MAX_DEVICE_BYTES) return `device is over ${String(MAX_DEVICE_BYTES)} bytes`;
  if (!/^[A-Za-z0-9_.:-]+$/.test(device)) return 'device may hold only letters, digits and - _ . :';
  return undefined;
}

/** Why a position sent by a client is malformed, or undefined. */
export function checkPosition(position: { epoch: unknown; offset: unknown }): string | undefined {
  if (typeof position.epoch !== 'string' || position.epoch.length === 0 || position.epoch.length > 64) {
    return 'since.epoch must be a string of 1 to 64 characters';
  }
  const offset = position.offset;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return 'since.offset must be an integer >= 0';
  return undefined;
}

/**
 * How long and how much an inbox keeps. The node passes it with every call, so the stores
 * hold no configuration of their own and every node of a cluster applies the same.
 */
export interface Retention {
  /** Offsets kept per uid: the newest `size` (a replaced `latest` value still counts). */
  readonly size: number;
  /** Ms a retained push is kept. */
  readonly ttlMs: number;
  /** Ms the epoch, the top offset and the device cursors outlive the uid's last use. */
  readonly metaTtlMs: number;
  /** Ms an `idempotencyKey` returns the first push's position. */
  readonly idempotencyMs: number;
  /** Devices remembered per uid; past it, the one seen longest ago is forgotten. */
  readonly maxDevices: number;
  /** Bytes of retained data the memory engine keeps in all; past it, idle uids lose data first (meta stays). */
  readonly memoryBytes: number;
}

/** The defaults of {@link Retention} (docs/delivery.md). */
export const RETENTION_DEFAULTS: Retention = {
  size: 1000,
  ttlMs: 24 * 3600_000,
  metaTtlMs: 30 * 24 * 3600_000,
  idempotencyMs: 300_000,
  maxDevices: 16,
  memoryBytes: 256 * 1024 * 1024,
};

/** One retained push, as an inbox stores and replays it. */
export interface InboxEntry {
  readonly offset: number;
  /** The JSON text of the push's data. */
  readonly data: string;
  readonly from: Uid | null;
  /** For `latest:<key>`: the key. */
  readonly key?: string | undefined;
  /** When it was retained, ms since the epoch. */
  readonly at: number;
}

/** What to retain. */
export interface AppendRequest {
  /** The JSON text of the data. */
  readonly data: string;
  readonly from: Uid | null;
  /** For `latest:<key>`: older entries of this key are dropped. */
  readonly key?: string | undefined;
  readonly idempotencyKey?: string | undefined;
}

/** Where a push was retained; `duplicate`: an earlier push with its idempotency key was, and nothing new is. */
export interface Appended extends InboxPosition {
  readonly duplicate: boolean;
}

/**
 * A uid's inbox as a connecting device finds it: the epoch and top, the lowest offset
 * still retained (`top + 1` when none is), and the device's cursor (null: a device the
 * inbox did not know, registered now with its cursor at the top).
 */
export interface InboxOpened {
  readonly epoch: string;
  readonly top: number;
  readonly lowest: number;
  readonly cursor: number | null;
}

/** A page of entries after an offset, and the lowest offset retained when it was read. */
export interface InboxPage {
  readonly epoch: string;
  readonly lowest: number;
  readonly top: number;
  readonly entries: readonly InboxEntry[];
}

/** A device as the inbox knows it. */
export interface InboxDevice {
  readonly device: string;
  /** The highest offset it acked (or its starting point, if it acked none). */
  readonly cursor: number;
  /** When it last connected or acked, ms since the epoch. */
  readonly lastSeen: number;
}

/** `GET /v1/users/{uid}/inbox`. */
export interface InboxInfo {
  readonly uid: Uid;
  /** Null when the uid has no inbox (nothing retained within the meta lifetime). */
  readonly epoch: string | null;
  readonly top: number;
  /** The retained offsets, `from` to `to`; `count` entries (a replaced `latest` value leaves a hole). */
  readonly retained: { readonly from: number; readonly to: number; readonly count: number };
  readonly devices: readonly InboxDevice[];
}

/** Why a device's `ack` is refused. */
export type AckRefusal = 'unknown_device' | 'backwards' | 'beyond_top';

/** The outcome of an ack: the cursor it set, or why it was refused. */
export type AckOutcome =
  | { readonly ok: true; readonly cursor: number }
  | { readonly ok: false; readonly reason: AckRefusal; readonly cursor: number; readonly top: number };

/** Why a device could not recover: documented in docs/delivery.md. */
export type UnrecoveredReason = 'epoch_changed' | 'expired';

/** What a connecting device is given: replay after `after`, or not recovered, and why. */
export type RecoveryPlan =
  | { readonly recovered: true; readonly after: number }
  | { readonly recovered: false; readonly reason: UnrecoveredReason; readonly after: number }
  | { readonly refused: string };

/**
 * Decides a connecting device's replay from the inbox it found and the position it sent
 * (`since`), or its cursor when it sent none. Never partial: either every missed entry is
 * still retained (`recovered`), or nothing is replayed and the device starts at the top.
 * A `since` beyond the top of its own epoch is a client's bug, refused.
 */
export function planRecovery(opened: InboxOpened, since: InboxPosition | undefined): RecoveryPlan {
  const { epoch, top, lowest } = opened;
  let after: number;
  if (since !== undefined) {
    if (since.epoch !== epoch) return { recovered: false, reason: 'epoch_changed', after: top };
    if (since.offset > top) return { refused: `since.offset ${String(since.offset)} is beyond the inbox top ${String(top)}` };
    after = since.offset;
  } else {
    if (opened.cursor === null) return { recovered: true, after: top };
    after = Math.min(opened.cursor, top);
  }
  return isRetainedAfter(after, lowest, top) ? { recovered: true, after } : { recovered: false, reason: 'expired', after: top };
}

/** Whether every offset after `after` up to `top` is still retained (or there is none). */
export function isRetainedAfter(after: number, lowest: number, top: number): boolean {
  return after >= top || after + 1 >= lowest;
}

/** Checks an ack against a cursor and the top; the new cursor, or why not. */
export function checkAck(cursor: number | null, top: number, upTo: number): AckOutcome {
  if (cursor === null) return { ok: false, reason: 'unknown_device', cursor: 0, top };
  if (upTo > top) return { ok: false, reason: 'beyond_top', cursor, top };
  if (upTo < cursor) return { ok: false, reason: 'backwards', cursor, top };
  return { ok: true, cursor: upTo };
}

/** Entries replayed per page, and per store read. */
export const REPLAY_PAGE = 100;

const EPOCH_BYTES = 12;
/** Epochs' random bytes, drawn 12 at a time from a pool: one getRandomValues per 256 epochs, not one per call. */
let pool = new Uint8Array(0);
let poolAt = 0;

/**
 * A fresh epoch. Cheap, because the Redis engine offers one to every script that may have
 * to make an inbox (most do not use it): one `randomBytes` per call was 11% of a durable
 * push's CPU (bench/README.md, "Inbox").
 */
export function newEpoch(): string {
  if (poolAt + EPOCH_BYTES > pool.length) {
    pool = globalThis.crypto.getRandomValues(new Uint8Array(EPOCH_BYTES * 256));
    poolAt = 0;
  }
  poolAt += EPOCH_BYTES;
  return epochOf(pool.subarray(poolAt - EPOCH_BYTES, poolAt));
}

/** An epoch: 12 characters of [a-z0-9], from the given random bytes (>= 12). */
export function epochOf(random: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let epoch = '';
  for (let i = 0; i < 12; i++) epoch += alphabet.charAt((random[i] ?? 0) % alphabet.length);
  return epoch;
}

/** What a connecting device is told in its `welcome` (see WelcomeFrame in frames.ts). */
export interface InboxWelcome {
  readonly device: string;
  readonly epoch: string;
  readonly offset: number;
  readonly cursor: number;
  readonly recovered: boolean;
  readonly missed: number;
  readonly reason?: UnrecoveredReason | undefined;
}

/** What a v1 client asks of the inbox in `auth`: its device, and the last position it received. */
export interface ResumeRequest {
  readonly device?: string | undefined;
  readonly since?: InboxPosition | undefined;
}

/** What a login is told when its inbox cannot be opened: a bad `since`, or a store that did not answer (`unavailable`). */
export interface InboxRefusal {
  readonly refused: string;
  readonly unavailable: boolean;
}

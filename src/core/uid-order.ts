import sortedBtree from 'sorted-btree';
import { ProgramErrorCode, UidpushError } from './errors.js';
import type { UidPage } from './service.js';
import type { Uid } from './types.js';

// sorted-btree is CommonJS with its class on `exports.default`; loaders disagree on what
// an ESM default import of that gives (node: `exports`, bundlers: often the class). No
// require(): core stays free of node: modules, so a browser bundle can take it.
const BTree = ((sortedBtree as { default?: unknown }).default ?? sortedBtree) as typeof sortedBtree.default;

/** Maps a UTF-16 unit so that units compare in code-point order (see compareUids). */
function codePointRank(unit: number): number {
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/**
 * A cluster lists its online uids in code-point order, which is the byte order of their
 * UTF-8 and so the order Redis gives members of equal score, whichever broker holds them;
 * a cursor names the last uid of a page, so a page never shifts when uids before it come
 * or go. JavaScript's `<` compares UTF-16 units instead, which puts U+E000-U+FFFF after
 * the surrogate pairs of U+10000 and above; this compares without allocating.
 */
export function compareUids(a: Uid, b: Uid): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    return x >= 0xd800 && y >= 0xd800 ? codePointRank(x) - codePointRank(y) : x - y;
  }
  return a.length - b.length;
}

/** The cursor that resumes after `uid`. */
export function cursorAfter(uid: Uid): string {
  return toBase64url(UTF8_ENCODER.encode(uid));
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
// Fatal: bytes that are not UTF-8 are a forged cursor, not a uid with U+FFFD in it.
// ignoreBOM: a uid may start with U+FEFF, and its cursor must name that uid.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const UTF8_ENCODER = new TextEncoder();
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const VALUE = new Map(Array.from({ length: ALPHABET.length }, (_, i) => [ALPHABET.charAt(i), i]));

/** Unpadded base64url, as Buffer's `base64url` writes it; no Buffer, so core runs in a browser. */
function toBase64url(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let c = 0; c < chars; c++) out += ALPHABET.charAt((n >> (18 - 6 * c)) & 63);
  }
  return out;
}

/** The bytes of base64url text of the alphabet only; a length no encoding has gives undefined. */
function fromBase64url(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1) return undefined;
  const bytes = new Uint8Array(Math.floor((text.length * 6) / 8));
  let acc = 0;
  let bits = 0;
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    acc = ((acc << 6) | (VALUE.get(text.charAt(i)) ?? 0)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = (acc >> bits) & 0xff;
    }
  }
  return bytes;
}

/**
 * The uid a cursor resumes after. A lenient base64 decoder skips what it cannot read, so
 * any string would name some uid: only the exact text {@link cursorAfter} makes is taken,
 * and every topology answers a malformed cursor the same way.
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a cursor cursorAfter did not make.
 */
export function uidOfCursor(cursor: string): Uid {
  const bytes = BASE64URL.test(cursor) ? fromBase64url(cursor) : undefined;
  // Only the canonical text: the unused low bits of a last character are zero.
  if (bytes !== undefined && bytes.length > 0 && toBase64url(bytes) === cursor) {
    try {
      return UTF8.decode(bytes);
    } catch {
      // not UTF-8: refused below
    }
  }
  throw new UidpushError(ProgramErrorCode.InvalidArgument, 'invalid cursor');
}

/**
 * Online uids kept in that order (a B+ tree), so a page costs O(limit x log n) however
 * many are online: the in-process bus and the primary of `--workers` answer
 * `GET /v1/users` from it.
 */
export class UidIndex {
  readonly #tree = new BTree<Uid, undefined>(undefined, compareUids);

  add(uid: Uid): void {
    this.#tree.set(uid, undefined);
  }

  delete(uid: Uid): void {
    this.#tree.delete(uid);
  }

  page(cursor: string | null, limit: number): UidPage {
    const uids: Uid[] = [];
    let next = this.#tree.nextHigherKey(cursor === null ? undefined : uidOfCursor(cursor));
    while (next !== undefined && uids.length < limit) {
      uids.push(next);
      next = this.#tree.nextHigherKey(next);
    }
    const last = uids.at(-1);
    return { uids, nextCursor: next !== undefined && last !== undefined ? cursorAfter(last) : null };
  }
}

import { createRequire } from 'node:module';
import type BTreeClass from 'sorted-btree';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import type { UidPage } from '../core/service.js';
import type { Uid } from '../core/types.js';

// sorted-btree is CommonJS with its class on `exports.default`; loaders disagree on what
// an ESM default import of that gives, require() does not.
const { default: BTree } = createRequire(import.meta.url)('sorted-btree') as { default: typeof BTreeClass.default };

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
  return Buffer.from(uid).toString('base64url');
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;
// Fatal: bytes that are not UTF-8 are a forged cursor, not a uid with U+FFFD in it.
// ignoreBOM: a uid may start with U+FEFF, and its cursor must name that uid.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The uid a cursor resumes after. Buffer's base64 decoder skips what it cannot read, so
 * any string would name some uid: only the exact text {@link cursorAfter} makes is taken,
 * and every topology answers a malformed cursor the same way.
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a cursor cursorAfter did not make.
 */
export function uidOfCursor(cursor: string): Uid {
  const bytes = BASE64URL.test(cursor) ? Buffer.from(cursor, 'base64url') : undefined;
  if (bytes !== undefined && bytes.length > 0 && bytes.toString('base64url') === cursor) {
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

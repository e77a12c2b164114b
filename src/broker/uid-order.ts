import type { UidPage } from '../core/service.js';
import type { Uid } from '../core/types.js';

/**
 * A cluster lists its online uids in byte order of their UTF-8 (the order Redis gives
 * members of equal score), whichever broker holds them, and a cursor names the last uid
 * of a page: a page never shifts when uids before it come or go.
 */
export function compareUids(a: Uid, b: Uid): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The cursor that resumes after `uid`. */
export function cursorAfter(uid: Uid): string {
  return Buffer.from(uid).toString('base64url');
}

/** The uid a cursor resumes after. */
export function uidOfCursor(cursor: string): Uid {
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

/** Pages `uids` (any order) after the cursor's uid. */
export function page(uids: Iterable<Uid>, cursor: string | null, limit: number): UidPage {
  const after = cursor === null ? null : Buffer.from(uidOfCursor(cursor));
  const keyed: { uid: Uid; bytes: Buffer }[] = [];
  for (const uid of uids) {
    const bytes = Buffer.from(uid);
    if (after === null || Buffer.compare(bytes, after) > 0) keyed.push({ uid, bytes });
  }
  keyed.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  const slice = keyed.slice(0, limit).map((k) => k.uid);
  const last = slice.at(-1);
  return { uids: slice, nextCursor: last !== undefined && keyed.length > limit ? cursorAfter(last) : null };
}

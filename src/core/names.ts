/**
 * The rules every uid and group name follows, at every entry point: a seed login, a
 * token's `sub` and `groups`, uidpush.v1 frames, the server API's paths and bodies, the
 * inner text port. One validator, so a name accepted in one place is never refused (or
 * unaddressable) in another. Specified in docs/protocol.md ("Names").
 */

/** The uid that addresses every logged-in connection in the seed's `all:<message>`. */
export const BROADCAST_UID = 'all';

/** What a name names: it appears in the refusal, and only a uid may not be `all`. */
export type NameKind = 'uid' | 'group';

const COLON = 0x3a;

/**
 * Checks `name` against the name rules. Returns why it is refused (a sentence naming the
 * rule, never echoing the name, which may hold anything), or `undefined` when it is fine.
 *
 * Refused: an empty name; over `maxBytes` UTF-8 bytes; `:` (the seed splits
 * `<uid>:<message>` at the first colon, so `a:b` could never be addressed); C0 controls
 * and DEL (U+0000-U+001F, U+007F); C1 controls (U+0080-U+009F); the line and paragraph
 * separators U+2028 and U+2029; bidirectional overrides and isolates (U+202A-U+202E,
 * U+2066-U+2069), which make a name display as another; a lone surrogate, which has no
 * UTF-8 form (it would reach clients as U+FFFD and never match again). A uid may not be
 * `all`, the seed's broadcast address; a group may, since groups have their own address.
 *
 * One pass over the UTF-16 code units, counting UTF-8 bytes as it goes; no allocation.
 */
export function checkName(name: string, kind: NameKind, maxBytes: number): string | undefined {
  const n = name.length;
  if (n === 0) return `empty ${kind}`;
  // Every code unit is at least one UTF-8 byte: too many units is too many bytes.
  if (n > maxBytes) return `${kind} longer than ${maxBytes} bytes`;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20 || c === 0x7f) return `${kind} must not contain control characters`;
      if (c === COLON) return `${kind} must not contain ':'`;
      bytes += 1;
    } else if (c < 0x800) {
      if (c <= 0x9f) return `${kind} must not contain C1 control characters (U+0080-U+009F)`;
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const low = name.charCodeAt(i + 1); // NaN past the end
      if (c > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) return `${kind} must not contain a lone surrogate`;
      i++;
      bytes += 4;
    } else {
      if (c >= 0x2028 && c <= 0x202e) {
        return c <= 0x2029
          ? `${kind} must not contain line or paragraph separators (U+2028, U+2029)`
          : `${kind} must not contain bidirectional overrides (U+202A-U+202E)`;
      }
      if (c >= 0x2066 && c <= 0x2069) return `${kind} must not contain bidirectional isolates (U+2066-U+2069)`;
      bytes += 3;
    }
    if (bytes > maxBytes) return `${kind} longer than ${maxBytes} bytes`;
  }
  if (kind === 'uid' && name === BROADCAST_UID) return `uid '${BROADCAST_UID}' is reserved for broadcast`;
  return undefined;
}

/** {@link checkName} for a uid. */
export function checkUid(uid: string, maxBytes: number): string | undefined {
  return checkName(uid, 'uid', maxBytes);
}

/** {@link checkName} for a group name. */
export function checkGroup(group: string, maxBytes: number): string | undefined {
  return checkName(group, 'group', maxBytes);
}

/**
 * The nesting limit on client JSON, checked on the raw text before anything parses it.
 * A schema or a serialiser that walks a value recursively overflows the stack on a few
 * kilobytes of `[[[[...`; this scan is one loop, so its cost is linear and its stack flat.
 */

/** Default most levels of nested arrays and objects in client data. */
export const DEFAULT_MAX_JSON_DEPTH = 32;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }

/**
 * Whether the JSON text nests arrays and objects more than `limit` levels deep (`[]` is one
 * level, `{"a":[1]}` two). Brackets inside strings, escaped quotes included, do not count.
 * Stops at the first level past the limit. Text that is not JSON gets some answer; the
 * parser refuses it afterwards anyway.
 *
 * Bytes (a Buffer, or any Uint8Array) are scanned as UTF-8: every byte of a multi-byte
 * sequence is 0x80 or above, so it is never mistaken for a quote, a backslash or a bracket.
 */
export function exceedsJsonDepth(text: Uint8Array | string, limit: number): boolean {
  return typeof text === 'string' ? stringExceeds(text, limit) : bytesExceeds(text, limit);
}

function bytesExceeds(bytes: Uint8Array, limit: number): boolean {
  const length = bytes.length;
  let depth = 0;
  for (let i = 0; i < length; i++) {
    const b = bytes[i];
    if (b === QUOTE) {
      i = closingQuote(bytes, i + 1);
      if (i === -1) return false;
    } else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/**
 * Bytes of a string read one by one before the rest is searched with indexOf: a native
 * call costs more than a short key, and less than a long text (60 KB: 130 -> 2 us).
 */
const SHORT_STRING = 32;

/** The index of the quote that ends the string starting at `from`, or -1 if none does. */
function closingQuote(bytes: Uint8Array, from: number): number {
  const shortEnd = Math.min(bytes.length, from + SHORT_STRING);
  let i = from;
  for (; i < shortEnd; i++) {
    const b = bytes[i];
    if (b === QUOTE) return i;
    if (b === BACKSLASH) i++;
  }
  // An escape may straddle shortEnd, so the search resumes at `i`, past it; backslashes
  // before `i` are consumed and must not be counted again.
  const resume = i;
  let quote = bytes.indexOf(QUOTE, resume);
  while (quote !== -1) {
    let backslashes = 0;
    for (let j = quote - 1; j >= resume && bytes[j] === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return quote;
    quote = bytes.indexOf(QUOTE, quote + 1);
  }
  return -1;
}

function stringExceeds(text: string, limit: number): boolean {
  const length = text.length;
  let depth = 0;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuoteIn(text, i + 1);
      if (i === -1) return false;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

function closingQuoteIn(text: string, from: number): number {
  const shortEnd = Math.min(text.length, from + SHORT_STRING);
  let i = from;
  for (; i < shortEnd; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i;
    if (c === BACKSLASH) i++;
  }
  const resume = i;
  let quote = text.indexOf('"', resume);
  while (quote !== -1) {
    let backslashes = 0;
    for (let j = quote - 1; j >= resume && text.charCodeAt(j) === BACKSLASH; j--) backslashes++;
    if (backslashes % 2 === 0) return quote;
    quote = text.indexOf('"', quote + 1);
  }
  return -1;
}

/**
 * UTF-8 byte counts without Buffer, so `core` runs in a browser as well as in node.
 */

/**
 * The number of bytes `text` takes in UTF-8: what node's `Buffer.byteLength(text)` returns,
 * a lone surrogate counted as the 3 bytes of the U+FFFD it is encoded as. One pass, no
 * allocation (TextEncoder would build the bytes only to count them).
 */
export function utf8ByteLength(text: string): number {
  const n = text.length;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const low = text.charCodeAt(i + 1); // NaN past the end
      if (low >= 0xdc00 && low <= 0xdfff) {
        i++;
        bytes += 4;
      } else {
        bytes += 3;
      }
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

/**
 * Client frames as a test writes them on a raw socket: masked, as RFC 6455 requires of a
 * client, in the shortest length encoding (7, 16 or 64 bits).
 */

/** Options of {@link clientFrame}. */
export interface ClientFrameOptions {
  /** The FIN bit. @defaultValue true */
  fin?: boolean;
  /** The masking key. @defaultValue [1, 2, 3, 4] */
  mask?: readonly number[];
  /** The length the header announces, when it is not the payload's (a header sent alone). */
  announce?: number;
}

/** A masked client frame of `opcode` carrying `payload`. */
export function clientFrame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: ClientFrameOptions = {}): Buffer {
  const bytes = Buffer.from(payload);
  const length = options.announce ?? bytes.length;
  const mask = Buffer.from(options.mask ?? [1, 2, 3, 4]);
  const size = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const head = Buffer.alloc(size);
  head[0] = (options.fin === false ? 0 : 0x80) | opcode;
  if (size === 2) head[1] = 0x80 | length;
  else if (size === 4) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  const masked = bytes.map((b, i) => b ^ (mask[i % 4] as number));
  return Buffer.concat([head, mask, masked]);
}

/** The payload of a close frame: the code, then the reason in UTF-8. */
export function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

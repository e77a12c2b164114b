import { isUtf8 } from 'node:buffer';
import { createRequire } from 'node:module';
import { CloseCode, isValidCloseCode } from '../../core/close-codes.js';

/**
 * Why a client's byte stream was refused, stable across releases (logs and tests name
 * them); each comes with the close code the connection is closed with.
 */
export const FrameError = {
  /** A client frame without the mask bit (1002). */
  ExpectedMask: 'expected_mask',
  /** RSV1, RSV2 or RSV3 set: no extension is ever negotiated (1002). */
  UnexpectedRsv: 'unexpected_rsv',
  /** A reserved opcode, a continuation with nothing to continue, or a new message inside a fragmented one (1002). */
  InvalidOpcode: 'invalid_opcode',
  /** A fragmented control frame (1002). */
  ExpectedFin: 'expected_fin',
  /** A control frame over 125 bytes, or a close frame of 1 byte (1002). */
  InvalidControlLength: 'invalid_control_length',
  /** A close frame with a code no close frame may carry (1002). */
  InvalidCloseCode: 'invalid_close_code',
  /** A text message, or a close reason, that is not UTF-8 (1007). */
  InvalidUtf8: 'invalid_utf8',
  /** A message in more than {@link MAX_FRAGMENTS} frames (1008). */
  TooManyFragments: 'too_many_fragments',
  /** A 64-bit length over 2^53 - 1, which no message of any limit could have (1009). */
  UnsupportedLength: 'unsupported_length',
  /** A message over the receive limit, refused at the frame header that passes it (1009). */
  TooLarge: 'too_large',
} as const;

/** One of {@link FrameError}. */
export type FrameError = (typeof FrameError)[keyof typeof FrameError];

/** Most frames one message may come in, as ws's server default: past it, 1008. */
export const MAX_FRAGMENTS = 16 * 1024;

/**
 * What the parser reports. The connection implements it, so the parser holds one
 * reference and no closures. Buffers handed over may be views of the chunk fed in: kept
 * past the call, they keep that chunk alive.
 */
export interface FrameSink {
  /** A complete message, its fragments joined; a text one is valid UTF-8. */
  onFrameMessage(data: Buffer, isBinary: boolean): void;
  onFramePing(data: Buffer): void;
  onFramePong(data: Buffer): void;
  /** The peer's close frame: its code (1005 for none) and reason. Nothing is parsed after it. */
  onFrameClose(code: number, reason: Buffer): void;
  /** The stream broke RFC 6455 or a limit: the code to close with, and why. Nothing is parsed after it. */
  onFrameError(closeCode: number, error: FrameError): void;
}

type Unmask = (buffer: Buffer, mask: Buffer) => void;

function unmaskJs(buffer: Buffer, mask: Buffer): void {
  for (let i = 0; i < buffer.length; i++) buffer[i] = (buffer[i] as number) ^ (mask[i & 3] as number);
}

/**
 * bufferutil's native unmask, as ws uses it; it is CommonJS without types, hence require.
 * Below 32 bytes the call costs more than the loop (ws's threshold too).
 */
const nativeUnmask: Unmask = ((): Unmask => {
  try {
    return (createRequire(import.meta.url)('bufferutil') as { unmask: Unmask }).unmask;
  } catch {
    return unmaskJs;
  }
})();

/** The mask of the frame being unmasked: one buffer for every connection, written just before use. */
const MASK = Buffer.alloc(4);

function unmask(data: Buffer, mask: number): void {
  if (mask === 0 || data.length === 0) return;
  MASK.writeInt32BE(mask, 0);
  if (data.length < 32) unmaskJs(data, MASK);
  else nativeUnmask(data, MASK);
}

const EMPTY = Buffer.alloc(0);
/** The longest frame header: 2 bytes, a 64-bit length, the mask. */
const MAX_HEADER = 14;
/** 2^53 - 1 over 2^32: the largest high word of a 64-bit length a JS number holds exactly. */
const MAX_HIGH_WORD = 0x1fffff;
/** The parser's states. */
const HEADER = 0;
const PAYLOAD = 1;
const DONE = 2;
/** What {@link FrameParser} `#header` returns when the header is not all there yet, or was refused. */
const INCOMPLETE = 0;
const REFUSED = -1;

/**
 * An incremental parser of the frames a client sends a server (RFC 6455 section 5), with
 * the rules ws's Receiver applies on a server without extensions. Fed chunks split
 * anywhere, it reports whole messages (fragments joined), pings, pongs, the close frame,
 * or one error; after a close frame or an error it ignores what follows.
 *
 * Its state is a few numbers and at most two buffers: the bytes of a header (or a control
 * frame's payload) split across chunks, and the message being received. That one grows
 * with the bytes that arrive, never to the announced length at once, so a header alone
 * cannot make the server allocate its limit.
 */
export class FrameParser {
  /** The receive limit in bytes for a message (all its fragments); 0: none. Read at each frame header. */
  limit: number;
  readonly #sink: FrameSink;
  #state = HEADER;
  /** The current frame: its opcode (0 for a continuation), FIN, payload length, mask, bytes of it read. */
  #opcode = 0;
  #fin = false;
  #length = 0;
  #mask = 0;
  #read = 0;
  /** The open message's opcode (1 text, 2 binary), 0 when none; its bytes in earlier frames; its frames. */
  #message = 0;
  #messageLength = 0;
  #fragments = 0;
  /** The open message's bytes, when they do not come whole in one chunk. */
  #data: Buffer | undefined = undefined;
  /** A header split across chunks, or the payload of a control frame split so. */
  #pending: Buffer | undefined = undefined;

  constructor(sink: FrameSink, limit: number) {
    this.#sink = sink;
    this.limit = limit;
  }

  /** Whether the parser stopped: a close frame or an error came. */
  get done(): boolean {
    return this.#state === DONE;
  }

  /** Parses the next bytes of the stream. Never throws for anything the peer sent. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (this.#state !== DONE) {
      if (this.#state === HEADER) {
        if (pos >= chunk.length) return;
        const pending = this.#pending;
        if (pending === undefined) {
          const used = this.#header(chunk, pos);
          if (used === REFUSED) return;
          if (used === INCOMPLETE) {
            // Copied: a view would keep the whole chunk alive for a few bytes.
            this.#pending = Buffer.from(chunk.subarray(pos));
            return;
          }
          pos += used;
        } else {
          const take = Math.min(MAX_HEADER - pending.length, chunk.length - pos);
          const head = Buffer.concat([pending, chunk.subarray(pos, pos + take)]);
          const used = this.#header(head, 0);
          if (used === REFUSED) return;
          if (used === INCOMPLETE) {
            // Less than a header with all of this chunk: `take` was the rest of it.
            this.#pending = head;
            return;
          }
          this.#pending = undefined;
          pos += used - pending.length;
        }
        this.#commit();
        if (this.#length === 0) this.#complete(EMPTY);
        continue;
      }
      // PAYLOAD
      const available = chunk.length - pos;
      if (available === 0) return;
      const want = this.#length - this.#read;
      if (this.#opcode >= 0x08) {
        if (this.#read === 0 && available >= want) {
          const payload = chunk.subarray(pos, pos + want);
          pos += want;
          this.#complete(payload);
          continue;
        }
        const n = Math.min(want, available);
        this.#pending ??= Buffer.allocUnsafe(this.#length);
        chunk.copy(this.#pending, this.#read, pos, pos + n);
        pos += n;
        this.#read += n;
        if (this.#read < this.#length) return;
        const payload = this.#pending;
        this.#pending = undefined;
        this.#complete(payload);
        continue;
      }
      if (this.#messageLength === 0 && this.#read === 0 && this.#fin && available >= want) {
        // A whole unfragmented message in this chunk: a view, no copy.
        const payload = chunk.subarray(pos, pos + want);
        pos += want;
        this.#complete(payload);
        continue;
      }
      const n = Math.min(want, available);
      const at = this.#messageLength + this.#read;
      this.#reserve(at + n);
      chunk.copy(this.#data as Buffer, at, pos, pos + n);
      pos += n;
      this.#read += n;
      if (this.#read < this.#length) return;
      this.#complete(undefined);
    }
  }

  /**
   * Checks the header at `at` as far as its bytes go, in ws's order, and reports what is
   * refused as soon as it can be told. Changes no state but to stop on an error.
   *
   * @returns the header's length once it is whole and accepted; INCOMPLETE; REFUSED.
   */
  #header(buf: Buffer, at: number): number {
    const available = buf.length - at;
    if (available < 2) return INCOMPLETE;
    const b0 = buf[at] as number;
    const b1 = buf[at + 1] as number;
    if ((b0 & 0x70) !== 0) return this.#fail(CloseCode.ProtocolError, FrameError.UnexpectedRsv);
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const short = b1 & 0x7f;
    if (opcode === 0x00) {
      if (this.#message === 0) return this.#fail(CloseCode.ProtocolError, FrameError.InvalidOpcode);
    } else if (opcode === 0x01 || opcode === 0x02) {
      if (this.#message !== 0) return this.#fail(CloseCode.ProtocolError, FrameError.InvalidOpcode);
    } else if (opcode >= 0x08 && opcode <= 0x0a) {
      if (!fin) return this.#fail(CloseCode.ProtocolError, FrameError.ExpectedFin);
      if (short > 125 || (opcode === 0x08 && short === 1)) return this.#fail(CloseCode.ProtocolError, FrameError.InvalidControlLength);
    } else {
      return this.#fail(CloseCode.ProtocolError, FrameError.InvalidOpcode);
    }
    if ((b1 & 0x80) === 0) return this.#fail(CloseCode.ProtocolError, FrameError.ExpectedMask);
    let length = short;
    let size = 2;
    if (short === 126) {
      if (available < 4) return INCOMPLETE;
      length = buf.readUInt16BE(at + 2);
      size = 4;
    } else if (short === 127) {
      if (available < 10) return INCOMPLETE;
      const high = buf.readUInt32BE(at + 2);
      if (high > MAX_HIGH_WORD) return this.#fail(CloseCode.MessageTooBig, FrameError.UnsupportedLength);
      length = high * 0x100000000 + buf.readUInt32BE(at + 6);
      size = 10;
    }
    // Before a byte of the payload is kept: the whole message counts, earlier fragments included.
    if (length > 0 && opcode < 0x08 && this.limit > 0 && this.#messageLength + length > this.limit) {
      return this.#fail(CloseCode.MessageTooBig, FrameError.TooLarge);
    }
    if (available < size + 4) return INCOMPLETE;
    if (opcode < 0x08 && this.#fragments + 1 > MAX_FRAGMENTS) {
      return this.#fail(CloseCode.PolicyViolation, FrameError.TooManyFragments);
    }
    this.#opcode = opcode;
    this.#fin = fin;
    this.#length = length;
    this.#mask = buf.readInt32BE(at + size);
    return size + 4;
  }

  /** Starts the payload of the header just accepted. */
  #commit(): void {
    this.#read = 0;
    this.#state = PAYLOAD;
    if (this.#opcode >= 0x08) return;
    if (this.#opcode !== 0x00) this.#message = this.#opcode;
    this.#fragments++;
  }

  /**
   * The current frame's payload is all there: `payload` for a control frame or a whole
   * message in one chunk; undefined when it was copied into the message buffer.
   */
  #complete(payload: Buffer | undefined): void {
    this.#state = HEADER;
    const opcode = this.#opcode;
    if (opcode >= 0x08) {
      const data = payload ?? EMPTY;
      unmask(data, this.#mask);
      this.#control(opcode, data);
      return;
    }
    let message: Buffer;
    if (payload !== undefined && this.#data === undefined) {
      unmask(payload, this.#mask);
      if (!this.#fin) {
        // An empty first fragment: nothing to keep yet. (A non-empty one is copied, not given here.)
        return;
      }
      message = payload;
    } else {
      const data = this.#data;
      if (data !== undefined) unmask(data.subarray(this.#messageLength, this.#messageLength + this.#length), this.#mask);
      this.#messageLength += this.#length;
      if (!this.#fin) return;
      message = data === undefined ? EMPTY : data.subarray(0, this.#messageLength);
    }
    const isBinary = this.#message === 0x02;
    this.#message = 0;
    this.#messageLength = 0;
    this.#fragments = 0;
    this.#data = undefined;
    if (!isBinary && !isUtf8(message)) {
      this.#fail(CloseCode.InvalidPayload, FrameError.InvalidUtf8);
      return;
    }
    this.#sink.onFrameMessage(message, isBinary);
  }

  #control(opcode: number, data: Buffer): void {
    if (opcode === 0x09) {
      this.#sink.onFramePing(data);
      return;
    }
    if (opcode === 0x0a) {
      this.#sink.onFramePong(data);
      return;
    }
    if (data.length === 0) {
      this.#stop();
      this.#sink.onFrameClose(1005, EMPTY);
      return;
    }
    const code = data.readUInt16BE(0);
    if (!isValidCloseCode(code)) {
      this.#fail(CloseCode.ProtocolError, FrameError.InvalidCloseCode);
      return;
    }
    const reason = data.subarray(2);
    if (!isUtf8(reason)) {
      this.#fail(CloseCode.InvalidPayload, FrameError.InvalidUtf8);
      return;
    }
    this.#stop();
    this.#sink.onFrameClose(code, reason);
  }

  /** Grows the message buffer to hold `bytes`, at most to the end of the current frame. */
  #reserve(bytes: number): void {
    const data = this.#data;
    if (data !== undefined && data.length >= bytes) return;
    const end = this.#messageLength + this.#length;
    const size = Math.min(end, Math.max(bytes, (data?.length ?? 0) * 2));
    const grown = Buffer.allocUnsafe(size);
    if (data !== undefined) data.copy(grown, 0, 0, this.#messageLength + this.#read);
    this.#data = grown;
  }

  #stop(): void {
    this.#state = DONE;
    this.#data = undefined;
    this.#pending = undefined;
  }

  #fail(closeCode: number, error: FrameError): typeof REFUSED {
    this.#stop();
    this.#sink.onFrameError(closeCode, error);
    return REFUSED;
  }
}

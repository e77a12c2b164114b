import type { Data, Uid } from '../core/types.js';
import { Codec } from '../protocol/codec.js';
import { messageFrame, type RetainedPart, type Scope } from '../protocol/json-v1.js';
import { encodeTextFrame } from './ws-frame.js';

/**
 * The frames of one push, built lazily and at most once per codec (and, for the JSON
 * codec of a push to several uids, once per uid, since `to` names the uid): never once
 * per connection. `onEncode` counts each build.
 */
export class PushFrames {
  readonly #data: Data;
  readonly #from: Uid | null;
  readonly #scope: Scope;
  readonly #to: string | null;
  readonly #onEncode: () => void;
  /** A retained push's place in its inbox: JSON frames carry it, the seed frame does not. */
  readonly retained: RetainedPart | undefined;
  #seed: Buffer | undefined;
  #json: Buffer | undefined;
  #jsonFor: string | null | undefined;
  #dataJson: string | undefined;

  /** @param dataJson - the data's JSON text, when the caller has it already (a retained push serialised it for the inbox). */
  constructor(
    data: Data,
    from: Uid | null,
    scope: Scope,
    to: string | null,
    onEncode: () => void,
    retained?: RetainedPart,
    dataJson?: string,
  ) {
    this.#data = data;
    this.#from = from;
    this.#scope = scope;
    this.#to = to;
    this.#onEncode = onEncode;
    this.retained = retained;
    this.#dataJson = dataJson;
  }

  /** The frame for a connection speaking `codec`; `uid` is the recipient for scope 'uid'. */
  frameFor(codec: Codec, uid: Uid): Buffer {
    if (codec === Codec.Seed) return this.seed();
    const to = this.#scope === 'uid' ? uid : this.#to;
    if (this.#json === undefined || this.#jsonFor !== to) {
      this.#dataJson ??= dataJson(this.#data);
      this.#onEncode();
      this.#json = encodeTextFrame(messageFrame(this.#scope, this.#from, to, this.#dataJson, this.retained));
      this.#jsonFor = to;
    }
    return this.#json;
  }

  /** The seed-protocol frame: text as is, any other value as its JSON text. */
  seed(): Buffer {
    if (this.#seed === undefined) {
      this.#onEncode();
      const data = this.#data;
      this.#seed = encodeTextFrame(typeof data === 'string' || data instanceof Uint8Array ? data : JSON.stringify(data));
    }
    return this.#seed;
  }
}

/** The JSON text of a push's data, as frames and the inbox carry it. */
export function dataJson(data: Data): string {
  if (data instanceof Uint8Array) return JSON.stringify(utf8Text(data));
  return JSON.stringify(data);
}

/** UTF-8 bytes as text; a Buffer decodes itself, any other Uint8Array is viewed as one (no copy). */
function utf8Text(bytes: Uint8Array): string {
  return (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('utf8');
}

import { z } from 'zod';
import { ErrorCode } from '../core/errors.js';
import type {
  AckFrame,
  ErrorFrame,
  FrameId,
  FrameJson,
  MessageFrame,
  PongFrame,
  ResyncFrame,
  Scope,
  WelcomeFrame,
} from '../core/frames.js';
import type { InboxWelcome } from '../core/inbox.js';
import { exceedsJsonDepth } from '../core/json-depth.js';
import type { JsonValue } from '../core/types.js';

/**
 * The uidpush.v1 protocol: one JSON object per text frame, with a `type`. Every client
 * request may carry an `id` (string or number) that the reply echoes. Pure: parsing and
 * formatting only. Specified in docs/protocol.md.
 */

const MAX_ID_LENGTH = 64;
const id = z.union([z.string().max(MAX_ID_LENGTH), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]).optional();
const name = z.string().min(1);
/**
 * Any JSON value, taken as JSON.parse made it. What JSON.parse returns is JSON by
 * construction, so `z.json()`'s recursive walk (and copy) of it checked nothing and cost
 * most of the parse: 78 -> 16 us for a 1 KB frame, JSON.parse included. The copy also
 * dropped `__proto__` keys; data is now delivered exactly as the client wrote it. The
 * nesting is bounded before the parse.
 */
const json = z.custom<JsonValue>((value) => value !== undefined, { error: 'Invalid input: expected JSON value' });

/** The schema of every client-to-server frame. */
export const clientFrameSchema = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('auth'),
      id,
      token: z.string().min(1).optional(),
      uid: name.optional(),
      device: z.string().optional(),
      since: z.object({ epoch: z.string(), offset: z.number() }).strict().optional(),
    })
    .strict(),
  z.object({ type: z.literal('send'), id, to: name, data: json, delivery: z.string().optional() }).strict(),
  z.object({ type: z.literal('ack'), id, upTo: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).strict(),
  z.object({ type: z.literal('publish'), id, group: name, data: json }).strict(),
  z.object({ type: z.literal('broadcast'), id, data: json }).strict(),
  z.object({ type: z.literal('join'), id, group: name }).strict(),
  z.object({ type: z.literal('leave'), id, group: name }).strict(),
  z.object({ type: z.literal('ping'), id }).strict(),
]);

/** A valid client frame. */
export type ClientFrame = z.infer<typeof clientFrameSchema>;
/** A request id, echoed in the reply. */
export type RequestId = FrameId | undefined;

/** A frame that could not be parsed, with the id if one could be read. */
export interface FrameError {
  readonly kind: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly id: RequestId;
}

/** Whether `value` is an id the reply may echo: a short string or a safe non-negative integer. */
function isEchoableId(value: unknown): value is string | number {
  if (typeof value === 'string') return value.length <= MAX_ID_LENGTH;
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * Parses one text frame. A frame whose JSON nests more than `maxDepth` levels below the
 * frame's own object is refused unparsed (so its error carries no id).
 */
export function parseClientFrame(raw: Buffer, maxDepth: number): { kind: 'frame'; frame: ClientFrame } | FrameError {
  if (exceedsJsonDepth(raw, maxDepth + 1)) {
    return { kind: 'error', code: ErrorCode.BadRequest, message: `data nested deeper than ${maxDepth} levels`, id: undefined };
  }
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return { kind: 'error', code: ErrorCode.BadRequest, message: 'frame is not valid JSON', id: undefined };
  }
  const result = clientFrameSchema.safeParse(value);
  if (result.success) return { kind: 'frame', frame: result.data };
  // An invalid id is never echoed: a 60 KB id would come back in full.
  const maybeId = (value as { id?: unknown } | null)?.id;
  const echoed = isEchoableId(maybeId) ? maybeId : undefined;
  const issue = result.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? 'frame' : issue.path.join('.');
  return {
    kind: 'error',
    code: ErrorCode.BadRequest,
    message: `${where}: ${issue?.message ?? 'invalid frame'}`,
    id: echoed,
  };
}

const idPart = (requestId: RequestId): string => (requestId === undefined ? '' : `,"id":${JSON.stringify(requestId)}`);

/** `welcome`: sent once authenticated; with the inbox on, the device's place in it. */
export function welcomeFrame(
  uid: WelcomeFrame['uid'],
  connectionId: WelcomeFrame['connectionId'],
  requestId?: RequestId,
  inbox?: InboxWelcome,
): FrameJson<WelcomeFrame> {
  const inboxPart =
    inbox === undefined
      ? ''
      : `,"device":${JSON.stringify(inbox.device)},"inbox":{"epoch":${JSON.stringify(inbox.epoch)},"offset":${String(inbox.offset)}},"cursor":${String(
          inbox.cursor,
        )},"recovered":${String(inbox.recovered)},"missed":${String(inbox.missed)}${inbox.reason === undefined ? '' : `,"reason":"${inbox.reason}"`}`;
  return `{"type":"welcome","uid":${JSON.stringify(uid)},"connectionId":${connectionId}${idPart(requestId)}${inboxPart}}`;
}

/** `resync`: the connection was resynchronised with its inbox in band (see ResyncFrame). */
export function resyncFrame(reason: ResyncFrame['reason'], epoch: string, offset: number): FrameJson<ResyncFrame> {
  return `{"type":"resync","recovered":false,"reason":"${reason}","inbox":{"epoch":${JSON.stringify(epoch)},"offset":${String(offset)}}}`;
}

/** `ack`: the result of a request that carried an id (or of any request, see protocol.md). */
export function ackFrame(requestId: RequestId, result: AckFrame['result']): FrameJson<AckFrame> {
  return `{"type":"ack"${idPart(requestId)},"result":${JSON.stringify(result)}}`;
}

/** `error`: a refused request; the connection stays open unless a close follows. */
export function errorFrame(code: ErrorFrame['code'], message: string, requestId?: RequestId): FrameJson<ErrorFrame> {
  return `{"type":"error","code":"${code}","message":${JSON.stringify(message)}${idPart(requestId)}}`;
}

/** `pong`: the answer to `ping`. */
export function pongFrame(requestId: RequestId): FrameJson<PongFrame> {
  return `{"type":"pong"${idPart(requestId)}}`;
}

/** Where a message was addressed (the type lives in core, shared with clients). */
export type { Scope } from '../core/frames.js';

/**
 * `message`. `dataJson` is the JSON text of the data, made once per push and spliced in,
 * so a push to many recipients serialises its data once.
 */
export function messageFrame(
  scope: Scope,
  from: MessageFrame['from'],
  to: MessageFrame['to'],
  dataJson: string,
  retained?: RetainedPart,
): FrameJson<MessageFrame> {
  const place =
    retained === undefined
      ? ''
      : `,"offset":${String(retained.offset)},"epoch":${JSON.stringify(retained.epoch)}${
          retained.key === undefined ? '' : `,"key":${JSON.stringify(retained.key)}`
        }`;
  return `{"type":"message","scope":"${scope}","from":${from === null ? 'null' : JSON.stringify(from)},"to":${
    to === null ? 'null' : JSON.stringify(to)
  }${place},"data":${dataJson}}`;
}

/** A retained push's place in its inbox, as a `message` frame carries it. */
export interface RetainedPart {
  readonly offset: number;
  readonly epoch: string;
  readonly key?: string | undefined;
}

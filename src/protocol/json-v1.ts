import { z } from 'zod';
import { ErrorCode } from '../core/errors.js';
import type { JsonValue, Uid } from '../core/types.js';

/**
 * The uidpush.v1 protocol: one JSON object per text frame, with a `type`. Every client
 * request may carry an `id` (string or number) that the reply echoes. Pure: parsing and
 * formatting only. Specified in docs/protocol.md.
 */

const id = z.union([z.string().max(64), z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]).optional();
const name = z.string().min(1);
const json = z.json();

/** The schema of every client-to-server frame. */
export const clientFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auth'), id, token: z.string().min(1).optional(), uid: name.optional() }).strict(),
  z.object({ type: z.literal('send'), id, to: name, data: json }).strict(),
  z.object({ type: z.literal('publish'), id, group: name, data: json }).strict(),
  z.object({ type: z.literal('broadcast'), id, data: json }).strict(),
  z.object({ type: z.literal('join'), id, group: name }).strict(),
  z.object({ type: z.literal('leave'), id, group: name }).strict(),
  z.object({ type: z.literal('ping'), id }).strict(),
]);

/** A valid client frame. */
export type ClientFrame = z.infer<typeof clientFrameSchema>;
/** A request id, echoed in the reply. */
export type RequestId = string | number | undefined;

/** A frame that could not be parsed, with the id if one could be read. */
export interface FrameError {
  readonly kind: 'error';
  readonly code: ErrorCode;
  readonly message: string;
  readonly id: RequestId;
}

/** Parses one text frame. */
export function parseClientFrame(raw: Buffer): { kind: 'frame'; frame: ClientFrame } | FrameError {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    return { kind: 'error', code: ErrorCode.BadRequest, message: 'frame is not valid JSON', id: undefined };
  }
  const result = clientFrameSchema.safeParse(value);
  if (result.success) return { kind: 'frame', frame: result.data };
  const maybeId = (value as { id?: unknown } | null)?.id;
  const echoed = typeof maybeId === 'string' || typeof maybeId === 'number' ? maybeId : undefined;
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

/** `welcome`: sent once authenticated. */
export function welcomeFrame(uid: Uid, connectionId: number, requestId?: RequestId): string {
  return `{"type":"welcome","uid":${JSON.stringify(uid)},"connectionId":${connectionId}${idPart(requestId)}}`;
}

/** `ack`: the result of a request that carried an id (or of any request, see protocol.md). */
export function ackFrame(requestId: RequestId, result: Record<string, JsonValue>): string {
  return `{"type":"ack"${idPart(requestId)},"result":${JSON.stringify(result)}}`;
}

/** `error`: a refused request; the connection stays open unless a close follows. */
export function errorFrame(code: ErrorCode, message: string, requestId?: RequestId): string {
  return `{"type":"error","code":"${code}","message":${JSON.stringify(message)}${idPart(requestId)}}`;
}

/** `pong`: the answer to `ping`. */
export function pongFrame(requestId: RequestId): string {
  return `{"type":"pong"${idPart(requestId)}}`;
}

/** Where a message was addressed: one uid, a group, or every connection. */
export type Scope = 'uid' | 'group' | 'broadcast';

/**
 * `message`. `dataJson` is the JSON text of the data, made once per push and spliced in,
 * so a push to many recipients serialises its data once.
 */
export function messageFrame(scope: Scope, from: Uid | null, to: string | null, dataJson: string): string {
  return `{"type":"message","scope":"${scope}","from":${from === null ? 'null' : JSON.stringify(from)},"to":${
    to === null ? 'null' : JSON.stringify(to)
  },"data":${dataJson}}`;
}

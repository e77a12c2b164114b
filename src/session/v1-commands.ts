import { canBroadcast, canJoin, canPublish, canSend } from '../auth/rights.js';
import { ErrorCode } from '../core/errors.js';
import { checkDevice, checkPosition, parseDelivery, type DeliveryClass, type ResumeRequest } from '../core/inbox.js';
import { isLimitExceeded } from '../core/limits.js';
import { checkName, type NameKind } from '../core/names.js';
import type { MaybePromise } from '../core/service.js';
import type { JsonValue } from '../core/types.js';
import { codecOf } from '../protocol/codec.js';
import { parseClientFrame, type ClientFrame, type RequestId } from '../protocol/json-v1.js';
import type { SessionConnection } from './connection.js';
import type { SessionContext } from './context.js';
import type { Login } from './login.js';

/**
 * The uidpush.v1 protocol's requests: auth, send, publish, broadcast, join, leave, ping.
 * A request with an id is answered with an ack or an error echoing it.
 */
export class V1Commands<C extends SessionConnection> {
  readonly #ctx: SessionContext<C>;
  readonly #login: Login<C>;

  constructor(ctx: SessionContext<C>, login: Login<C>) {
    this.#ctx = ctx;
    this.#login = login;
  }

  /** Handles one text frame. */
  handle(conn: C, data: Buffer): void {
    const parsed = parseClientFrame(data, this.#ctx.options.maxJsonDepth);
    if (parsed.kind === 'error') {
      this.#ctx.error(conn, parsed.code, parsed.message, parsed.id);
      return;
    }
    const frame = parsed.frame;
    // Here, rather than in the session's guard, so the `internal` error answers the request's id.
    try {
      this.#frame(conn, frame);
    } catch (err) {
      this.#ctx.internal(conn, err, frame.id, 'handling a client message');
    }
  }

  #frame(conn: C, frame: ClientFrame): void {
    const ctx = this.#ctx;
    if (frame.type === 'ping') {
      const pong = codecOf(conn.codec).pong(frame.id);
      if (pong !== undefined) conn.sendText(pong);
      return;
    }
    if (frame.type === 'auth') {
      this.#auth(conn, frame);
      return;
    }
    const from = ctx.node.uidOf(conn);
    const grants = conn.grants;
    if (from === undefined || grants === undefined) {
      ctx.error(conn, ErrorCode.Unauthorized, 'authenticate first (send an auth frame)', frame.id);
      return;
    }
    const id = frame.id;
    const wantsAnswer = id !== undefined;
    switch (frame.type) {
      case 'send': {
        if (!this.#validName(conn, frame.to, 'uid', 'to', id)) return;
        if (!canSend(grants)) {
          ctx.error(conn, ErrorCode.Forbidden, 'no right to send to a uid', id);
          return;
        }
        let delivery: DeliveryClass | undefined;
        if (frame.delivery !== undefined) {
          const parsed = parseDelivery(frame.delivery);
          if (typeof parsed === 'string') {
            ctx.error(conn, ErrorCode.BadRequest, `delivery: ${parsed}`, id);
            return;
          }
          if (parsed.kind !== 'ephemeral' && !ctx.node.inboxOn) {
            ctx.error(conn, ErrorCode.BadRequest, 'delivery: the inbox is off on this server; only ephemeral pushes', id);
            return;
          }
          delivery = parsed;
        }
        ctx.routed(conn, id, ctx.node.sendToUid(frame.to, frame.data, from, wantsAnswer, delivery), (r) => {
          ctx.events.message(conn, from, 'uid', frame.to, frame.data, r.connections);
          const fields: Record<string, JsonValue> = { online: r.online > 0, connections: r.connections };
          if (r.offset !== undefined && r.epoch !== undefined) {
            fields.offset = r.offset;
            fields.epoch = r.epoch;
          }
          ctx.ack(conn, id, degraded(r, fields));
        });
        return;
      }
      case 'ack': {
        const outcome = ctx.node.ack(conn, frame.upTo);
        if (outcome === undefined) {
          ctx.error(conn, ErrorCode.BadRequest, 'ack: this connection has no inbox (the server runs without --inbox)', id);
          return;
        }
        ctx.routed(conn, id, outcome, (result) => {
          if (result.ok) {
            ctx.ack(conn, id, { upTo: result.cursor });
            return;
          }
          ctx.error(conn, ErrorCode.BadRequest, ackRefusal(result.reason, frame.upTo, result.cursor, result.top), id);
        });
        return;
      }
      case 'publish': {
        if (!this.#validName(conn, frame.group, 'group', 'group', id)) return;
        if (!canPublish(grants, frame.group)) {
          ctx.error(conn, ErrorCode.Forbidden, `no right to publish to group ${frame.group}`, id);
          return;
        }
        ctx.routed(conn, id, ctx.node.publish(frame.group, frame.data, from, wantsAnswer), (r) => {
          ctx.events.message(conn, from, 'group', frame.group, frame.data, r.connections);
          ctx.ack(conn, id, degraded(r, { online: r.online, connections: r.connections }));
        });
        return;
      }
      case 'broadcast': {
        if (!canBroadcast(grants)) {
          ctx.error(conn, ErrorCode.Forbidden, 'no right to broadcast', id);
          return;
        }
        ctx.routed(conn, id, ctx.node.broadcast(frame.data, from, wantsAnswer), (r) => {
          ctx.events.message(conn, from, 'broadcast', undefined, frame.data, r.connections);
          ctx.ack(conn, id, degraded(r, { connections: r.connections }));
        });
        return;
      }
      case 'join': {
        if (!this.#validName(conn, frame.group, 'group', 'group', id)) return;
        if (!canJoin(grants, frame.group)) {
          ctx.error(conn, ErrorCode.Forbidden, `no right to join group ${frame.group}`, id);
          return;
        }
        // A cap refuses by throwing (alone) or rejecting (in a cluster): either way the
        // client is told, and the connection carries on.
        let result: MaybePromise<boolean>;
        try {
          result = ctx.node.join(frame.group, from);
        } catch (err) {
          // Anything else is a bug: the frame's last-resort guard answers it.
          if (!isLimitExceeded(err)) throw err;
          ctx.error(conn, ErrorCode.LimitExceeded, err.message, id);
          return;
        }
        ctx.routed(conn, id, result, (joined) => {
          ctx.ack(conn, id, { group: frame.group, joined });
        });
        return;
      }
      case 'leave': {
        if (!this.#validName(conn, frame.group, 'group', 'group', id)) return;
        ctx.routed(conn, id, ctx.node.leave(frame.group, from), (left) => {
          ctx.ack(conn, id, { group: frame.group, left });
        });
        return;
      }
    }
  }

  #auth(conn: C, frame: Extract<ClientFrame, { type: 'auth' }>): void {
    const ctx = this.#ctx;
    const resume = this.#resume(conn, frame);
    if (resume === null) return;
    if (ctx.verifier !== undefined) {
      if (frame.token === undefined) {
        ctx.error(conn, ErrorCode.BadRequest, 'auth: token required', frame.id);
        return;
      }
      this.#login.withToken(conn, frame.token, frame.id, resume);
      return;
    }
    if (ctx.node.uidOf(conn) !== undefined) {
      ctx.error(conn, ErrorCode.BadRequest, 'auth: already authenticated', frame.id);
      return;
    }
    if (frame.uid === undefined) {
      ctx.error(conn, ErrorCode.BadRequest, 'auth: uid required (token auth is off)', frame.id);
      return;
    }
    this.#login.asUid(conn, frame.uid, frame.id, resume);
  }

  /** The auth frame's `device` and `since`, checked; null when refused (answered). */
  #resume(conn: C, frame: Extract<ClientFrame, { type: 'auth' }>): ResumeRequest | null {
    const { device, since } = frame;
    const refusal = (device === undefined ? undefined : checkDevice(device)) ?? (since === undefined ? undefined : checkPosition(since));
    if (refusal !== undefined) {
      this.#ctx.error(conn, ErrorCode.BadRequest, `auth: ${refusal}`, frame.id);
      return null;
    }
    return { device, since };
  }

  /** Checks a uid or group a frame names; answers `bad_request` naming the field and rule. */
  #validName(conn: C, name: string, kind: NameKind, field: string, id: RequestId): boolean {
    const refusal = checkName(name, kind, this.#ctx.options.maxUidLength);
    if (refusal === undefined) return true;
    this.#ctx.error(conn, ErrorCode.BadRequest, `${field}: ${refusal}`, id);
    return false;
  }
}

/** Why an ack was refused, for the client. */
function ackRefusal(reason: 'unknown_device' | 'backwards' | 'beyond_top', upTo: number, cursor: number, top: number): string {
  switch (reason) {
    case 'unknown_device':
      return "ack: the inbox does not know this connection's device (forgotten: reconnect)";
    case 'backwards':
      return `ack: upTo ${String(upTo)} is below the device's cursor ${String(cursor)}`;
    case 'beyond_top':
      return `ack: upTo ${String(upTo)} is beyond the inbox top ${String(top)}`;
  }
}

/** An ack's fields, with `degraded: true` when only this node's clients got the message. */
function degraded(r: { degraded?: true }, fields: Record<string, JsonValue>): Record<string, JsonValue> {
  if (r.degraded === true) fields.degraded = true;
  return fields;
}

import type { FastifyPluginCallback } from 'fastify';
import { ErrorCode } from '../../core/errors.js';
import { checkInboxKey, MAX_AWAIT_ACKS, MAX_AWAIT_MS, parseDelivery } from '../../core/inbox.js';
import type { PushOptions, PushService } from '../../core/service.js';
import type { JsonValue } from '../../core/types.js';
import { anyJson, ApiError, checkNameAt, dataBodySchema, resource } from '../resource.js';

/** Options of {@link pushRoutes}. */
export interface PushRoutesOptions {
  service: Pick<PushService, 'pushToUids' | 'broadcast' | 'publish'>;
  /** Most uids in one `POST /v1/push`. */
  maxUids: number;
  /** Longest uid or group, in UTF-8 bytes. */
  maxUidLength: number;
}

/** The body of `POST /v1/push`, as its schema lets it through. */
interface PushBody {
  uid?: string;
  uids?: string[];
  data: JsonValue;
  delivery?: string;
  idempotencyKey?: string;
  await?: { acked?: number; timeoutMs: number };
}

/**
 * The schema of `POST /v1/push`. The await bounds are here, so that ajv's 400 names the
 * field and the bound (`body/await/timeoutMs must be <= 30000`); the rules that need more
 * than one field, or core's parsers, are the handler's.
 */
const pushBodySchema = {
  type: 'object',
  properties: {
    uid: { type: 'string' },
    uids: { type: 'array', items: { type: 'string' }, minItems: 1 },
    data: anyJson,
    delivery: { type: 'string' },
    idempotencyKey: { type: 'string' },
    await: {
      type: 'object',
      properties: {
        acked: { type: 'integer', minimum: 1, maximum: MAX_AWAIT_ACKS },
        timeoutMs: { type: 'integer', minimum: 1, maximum: MAX_AWAIT_MS },
      },
      required: ['timeoutMs'],
      additionalProperties: false,
    },
  },
  required: ['data'],
  additionalProperties: false,
};

/**
 * The push options of a body, checked with core's rules (the same as the CLI's and v1
 * `send`'s), with only the fields the body has: the service applies its own defaults
 * (`defaultDelivery`) to the others.
 * @throws ApiError 400 naming the field.
 */
function pushOptionsOf(body: PushBody): PushOptions {
  const options: PushOptions = {};
  if (body.delivery !== undefined) {
    const delivery = parseDelivery(body.delivery);
    if (typeof delivery === 'string') throw new ApiError(400, ErrorCode.BadRequest, `body/delivery: ${delivery}`);
    options.delivery = delivery;
  }
  if (body.idempotencyKey !== undefined) {
    const refusal = checkInboxKey(body.idempotencyKey, 'idempotencyKey');
    if (refusal !== undefined) throw new ApiError(400, ErrorCode.BadRequest, `body/idempotencyKey: ${refusal}`);
    options.idempotencyKey = body.idempotencyKey;
  }
  if (body.await !== undefined) {
    // Acks are counted per device of one inbox: several uids would need a count per uid.
    if (body.uid === undefined) throw new ApiError(400, ErrorCode.BadRequest, 'body/await: needs one uid (uid, not uids)');
    // An ephemeral push gets no offset, so no device can ack it: the wait could only time out.
    if (options.delivery?.kind === 'ephemeral') {
      throw new ApiError(400, ErrorCode.BadRequest, 'body/await: an ephemeral push cannot be acked');
    }
    options.await = { acked: body.await.acked ?? 1, timeoutMs: body.await.timeoutMs };
  }
  return options;
}

/**
 * What delivers: `POST /v1/push` (push to uids, optionally retained in their inboxes),
 * `POST /v1/broadcast` (broadcast) and `POST /v1/groups/{group}/push` (publish to a group).
 * Broadcasts and group pushes are never retained in this release, so their bodies stay
 * `{ "data": ... }`.
 */
export const pushRoutes: FastifyPluginCallback<PushRoutesOptions> = (app, { service, maxUids, maxUidLength }, done) => {
  resource(app, '/v1/push', {
    POST: {
      schema: { body: pushBodySchema },
      handler: (request) => {
        const body = request.body as PushBody;
        if ((body.uid === undefined) === (body.uids === undefined)) {
          throw new ApiError(400, ErrorCode.BadRequest, 'body must have exactly one of uid or uids');
        }
        const uids = body.uids ?? [body.uid as string];
        if (uids.length > maxUids) {
          throw new ApiError(400, ErrorCode.BadRequest, `body/uids: more than ${maxUids} uids`);
        }
        uids.forEach((uid, i) => {
          checkNameAt(uid, 'uid', maxUidLength, body.uids === undefined ? 'body/uid' : `body/uids/${i}`);
        });
        // A refused option is answered before anything is delivered.
        return service.pushToUids(uids, body.data, pushOptionsOf(body));
      },
    },
  });

  resource(app, '/v1/broadcast', {
    POST: {
      schema: { body: dataBodySchema },
      handler: (request) => service.broadcast((request.body as { data: JsonValue }).data),
    },
  });

  resource(app, '/v1/groups/:group/push', {
    POST: {
      schema: { body: dataBodySchema },
      handler: (request) => {
        const { group } = request.params as { group: string };
        checkNameAt(group, 'group', maxUidLength, 'params/group');
        return service.publish(group, (request.body as { data: JsonValue }).data);
      },
    },
  });
  done();
};

import type { FastifyPluginCallback } from 'fastify';
import { ErrorCode } from '../../core/errors.js';
import type { PushService } from '../../core/service.js';
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

/**
 * What delivers: `POST /v1/push` (push to uids), `POST /v1/broadcast` (broadcast) and
 * `POST /v1/groups/{group}/push` (publish to a group).
 */
export const pushRoutes: FastifyPluginCallback<PushRoutesOptions> = (app, { service, maxUids, maxUidLength }, done) => {
  resource(app, '/v1/push', {
    POST: {
      schema: {
        body: {
          type: 'object',
          properties: {
            uid: { type: 'string' },
            uids: { type: 'array', items: { type: 'string' }, minItems: 1 },
            data: anyJson,
          },
          required: ['data'],
          additionalProperties: false,
        },
      },
      handler: (request) => {
        const body = request.body as { uid?: string; uids?: string[]; data: JsonValue };
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
        return service.pushToUids(uids, body.data);
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

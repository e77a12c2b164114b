import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import { fitsCloseReason } from '../../core/close-codes.js';
import { ErrorCode } from '../../core/errors.js';
import type { PushService } from '../../core/service.js';
import type { Uid } from '../../core/types.js';
import { ApiError, checkNameAt, resource } from '../resource.js';

/** Options of {@link usersRoutes}. */
export interface UsersRoutesOptions {
  service: Pick<PushService, 'listUids' | 'connectionsOf' | 'kick' | 'revokeTokens' | 'inboxOf'>;
  /** Longest uid, in UTF-8 bytes. */
  maxUidLength: number;
}

/**
 * Presence, inbox and kick: `GET /v1/users` (a page of online uids), `GET /v1/users/{uid}`
 * (a uid's presence), `GET /v1/users/{uid}/inbox` (its inbox's position, retained range and
 * device cursors) and `POST /v1/users/{uid}/kick`.
 */
export const usersRoutes: FastifyPluginCallback<UsersRoutesOptions> = (app, { service, maxUidLength }, done) => {
  const uidParam = (request: FastifyRequest): Uid => {
    const { uid } = request.params as { uid: string };
    checkNameAt(uid, 'uid', maxUidLength, 'params/uid');
    return uid;
  };

  resource(app, '/v1/users', {
    GET: {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            cursor: { type: 'string' },
            limit: { type: 'string', pattern: '^[0-9]{1,5}$' },
          },
          additionalProperties: false,
        },
      },
      handler: (request) => {
        const query = request.query as { cursor?: string; limit?: string };
        const limit = query.limit === undefined ? 100 : Number(query.limit);
        if (limit < 1 || limit > 1000) {
          throw new ApiError(400, ErrorCode.BadRequest, 'querystring/limit must be between 1 and 1000');
        }
        return service.listUids(query.cursor === undefined || query.cursor === '' ? null : query.cursor, limit);
      },
    },
  });

  resource(app, '/v1/users/:uid', {
    GET: {
      handler: async (request) => {
        const uid = uidParam(request);
        const connections = await service.connectionsOf(uid);
        return { uid, online: connections > 0, connections };
      },
    },
  });

  // The service's InboxInfo as is: `epoch: null` for a uid with no inbox, not a 404, as a
  // uid never seen is offline rather than missing.
  resource(app, '/v1/users/:uid/inbox', {
    GET: { handler: (request) => service.inboxOf(uidParam(request)) },
  });

  resource(app, '/v1/users/:uid/kick', {
    POST: {
      schema: {
        body: {
          type: ['object', 'null'],
          properties: { reason: { type: 'string', maxLength: 100 }, revokeTokens: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
      handler: async (request) => {
        const uid = uidParam(request);
        const body = request.body as { reason?: string; revokeTokens?: boolean } | null | undefined;
        const reason = body?.reason ?? 'kicked';
        if (!fitsCloseReason(reason)) {
          throw new ApiError(400, ErrorCode.BadRequest, 'body/reason: longer than 123 bytes');
        }
        if (body?.revokeTokens !== true) return { uid, kicked: await service.kick(uid, reason) };
        // The cut-off first: a client closed by the kick and reconnecting at once is refused.
        const revoked = await service.revokeTokens(uid);
        return { uid, kicked: await service.kick(uid, reason), revoked };
      },
    },
  });
  done();
};

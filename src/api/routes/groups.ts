import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import type { PushService } from '../../core/service.js';
import type { Group, Uid } from '../../core/types.js';
import { checkNameAt, resource } from '../resource.js';

/** Options of {@link groupsRoutes}. */
export interface GroupsRoutesOptions {
  service: Pick<PushService, 'groupInfo' | 'join' | 'leave' | 'leaveAll'>;
  /** Longest uid or group, in UTF-8 bytes. */
  maxUidLength: number;
}

/**
 * Membership: `GET /v1/groups/{group}` (a group's presence), `PUT`/`DELETE
 * /v1/groups/{group}/members/{uid}` (join, leave) and `DELETE /v1/users/{uid}/groups` (leave
 * every group). Publishing to a group is {@link pushRoutes}'s.
 */
export const groupsRoutes: FastifyPluginCallback<GroupsRoutesOptions> = (app, { service, maxUidLength }, done) => {
  const groupParam = (request: FastifyRequest): Group => {
    const { group } = request.params as { group: string };
    checkNameAt(group, 'group', maxUidLength, 'params/group');
    return group;
  };
  const uidParam = (request: FastifyRequest): Uid => {
    const { uid } = request.params as { uid: string };
    checkNameAt(uid, 'uid', maxUidLength, 'params/uid');
    return uid;
  };
  // The group is checked first: a request with both wrong names is told about the group.
  const memberParams = (request: FastifyRequest): { group: Group; uid: Uid } => ({ group: groupParam(request), uid: uidParam(request) });

  resource(app, '/v1/groups/:group', {
    GET: { handler: (request) => service.groupInfo(groupParam(request)) },
  });

  resource(app, '/v1/groups/:group/members/:uid', {
    PUT: {
      handler: async (request) => {
        const { group, uid } = memberParams(request);
        return { group, uid, added: await service.join(group, uid) };
      },
    },
    DELETE: {
      handler: async (request) => {
        const { group, uid } = memberParams(request);
        return { group, uid, removed: await service.leave(group, uid) };
      },
    },
  });

  resource(app, '/v1/users/:uid/groups', {
    DELETE: {
      handler: async (request) => {
        const uid = uidParam(request);
        return { uid, left: await service.leaveAll(uid) };
      },
    },
  });
  done();
};

import type { FastifyPluginCallback } from 'fastify';
import type { PushService } from '../../core/service.js';
import { resource } from '../resource.js';

/** Options of {@link statsRoutes}. */
export interface StatsRoutesOptions {
  service: Pick<PushService, 'stats'>;
}

/** `GET /v1/stats`: the server's counters and gauges as JSON. */
export const statsRoutes: FastifyPluginCallback<StatsRoutesOptions> = (app, { service }, done) => {
  resource(app, '/v1/stats', { GET: { handler: () => service.stats() } });
  done();
};

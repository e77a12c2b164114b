import type { FastifyPluginCallback } from 'fastify';
import type { Metrics } from '../../metrics/metrics.js';
import { resource } from '../resource.js';

/** Options of {@link metricsRoutes}. */
export interface MetricsRoutesOptions {
  metrics: Pick<Metrics, 'contentType' | 'exposition'>;
}

/** `GET /metrics`: the Prometheus exposition. */
export const metricsRoutes: FastifyPluginCallback<MetricsRoutesOptions> = (app, { metrics }, done) => {
  resource(app, '/metrics', {
    GET: {
      // Under --workers, the whole group's (Metrics.exposition); 503 if a worker is silent.
      handler: async (_req, reply) => reply.type(metrics.contentType).send(await metrics.exposition()),
    },
  });
  done();
};

import type { FastifyPluginCallback } from 'fastify';
import type { PushService } from '../../core/service.js';
import { resource } from '../resource.js';

/** Options of {@link healthRoutes}. */
export interface HealthRoutesOptions {
  service: Pick<PushService, 'ready'>;
}

/**
 * `GET /healthz` (the process answers) and `GET /readyz` (it accepts clients: 503 before
 * listen and while shutting down). Public: a load balancer's probe has no key.
 */
export const healthRoutes: FastifyPluginCallback<HealthRoutesOptions> = (app, { service }, done) => {
  resource(app, '/healthz', { GET: { handler: () => ({ status: 'ok' }) } }, { public: true });
  resource(
    app,
    '/readyz',
    {
      GET: {
        handler: (_req, reply) => (service.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not_ready' })),
      },
    },
    { public: true },
  );
  done();
};

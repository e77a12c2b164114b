import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ErrorCode, ProgramErrorCode, UidpushError, UnavailableError } from '../core/errors.js';
import { exceedsJsonDepth } from '../core/json-depth.js';
import { isLimitExceeded } from '../core/limits.js';
import { isLocalOrigin, isLoopbackHostHeader } from '../core/origins.js';
import type { PushService } from '../core/service.js';
import type { Logger } from '../core/types.js';
import type { Metrics } from '../metrics/metrics.js';
import { makeKeyCheck } from './api-key.js';
import { apiServerOptions, guardApiServer, type ApiConnectionLimits, type ApiTls } from './connection-limits.js';
import { ApiError, sendError } from './resource.js';
import { groupsRoutes } from './routes/groups.js';
import { healthRoutes } from './routes/health.js';
import { metricsRoutes } from './routes/metrics.js';
import { pushRoutes } from './routes/push.js';
import { statsRoutes } from './routes/stats.js';
import { usersRoutes } from './routes/users.js';

/** What the API reports to and serves of the server's metrics. */
export type ApiMetrics = Pick<Metrics, 'observeApiRequest' | 'internalError' | 'contentType' | 'exposition'>;

/** Options of the server API. */
export interface ApiOptions {
  service: PushService;
  metrics: ApiMetrics;
  /**
   * Required on every route but /healthz and /readyz; undefined: no key, and those routes
   * answer only requests whose Host names a loopback address (no foreign Origin).
   */
  apiKey: string | undefined;
  /** Most uids in one `POST /v1/push`. */
  maxUids: number;
  /** Longest uid, in UTF-8 bytes. */
  maxUidLength: number;
  /** Most levels of nesting in a body's `data`; deeper bodies get 400 before they are parsed. */
  maxJsonDepth: number;
  /** Largest request body, in bytes; larger ones get 413. */
  bodyLimit: number;
  /** Timeouts and the connection cap of its HTTP server. */
  limits: ApiConnectionLimits;
  /** Serve https with this certificate; undefined: plain http. */
  tls?: ApiTls | undefined;
  logger: Logger;
}

/**
 * Without a key the API is for this machine only, and listening on loopback does not
 * ensure that: a page in a local browser can reach it through a DNS name rebound to
 * 127.0.0.1 (its Host is still that name), or send it simple cross-site requests (its
 * Origin is the page's). Requests without either header are not from a browser.
 */
function refuseForeign(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  const { host, origin } = request.headers;
  if (host !== undefined && !isLoopbackHostHeader(host)) {
    return sendError(
      reply,
      403,
      ErrorCode.Forbidden,
      'keyless server API: the Host header must name a loopback address (set an API key to serve other names)',
    );
  }
  if (!isLocalOrigin(origin)) {
    return sendError(
      reply,
      403,
      ErrorCode.Forbidden,
      'keyless server API: requests from pages of other origins are refused (set an API key)',
    );
  }
  return undefined;
}

/**
 * Builds the HTTP+JSON server API (fastify) on a {@link PushService}. The caller listens.
 * Routes are documented in docs/http-api.md.
 */
export function createApi(options: ApiOptions): FastifyInstance {
  const { metrics } = options;
  const log = options.logger;
  const common = {
    logger: false,
    bodyLimit: options.bodyLimit,
    // Wrong types are errors, never coerced or silently removed.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    // A uid in the path is percent-encoded: up to 3 characters per byte.
    routerOptions: { maxParamLength: options.maxUidLength * 3 + 16 },
    // Errors the router raises before a route runs (bad URL encoding 400, a path segment
    // over the limit 414) get the same JSON body as every other error.
    frameworkErrors: (error: FastifyError, _request: FastifyRequest, reply: FastifyReply) => {
      const status = error.statusCode ?? 400;
      void sendError(reply, status, ErrorCode.BadRequest, error.message);
    },
  } as const;
  // Two calls, one per server kind, for fastify's overloads; the routes do not care which.
  const server = apiServerOptions(options.limits, options.tls);
  const app: FastifyInstance = 'https' in server ? Fastify({ ...server, ...common }) : Fastify({ ...server, ...common });
  // JSON only: any other body is refused with 415 rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  // The nesting limit, on the raw text before JSON.parse: a deep body overflowed the stack
  // of the serialiser that encodes the push (500). The body's own object is one level.
  // `__proto__` and `constructor` are ordinary keys ('ignore'), as in v1 data and on the
  // inner port: JSON.parse makes them own properties, nothing merges bodies into objects,
  // and every body schema refuses unknown fields, so inside `data` they are delivered as
  // written (fastify's default, 'error', refused them with 400).
  const parseJson = app.getDefaultJsonParser('ignore', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (exceedsJsonDepth(body, options.maxJsonDepth + 1)) {
      done(new ApiError(400, ErrorCode.BadRequest, `body: data nested deeper than ${options.maxJsonDepth} levels`), undefined);
      return;
    }
    void parseJson(request, body as string, done);
  });
  guardApiServer(app, options.limits, log);

  const checkKey = options.apiKey === undefined ? undefined : makeKeyCheck(options.apiKey);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const config = request.routeOptions.config as { public?: boolean };
    if (config.public === true) return;
    if (checkKey === undefined) return refuseForeign(request, reply);
    if (!checkKey(request.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer');
      return sendError(reply, 401, ErrorCode.Unauthorized, 'missing or wrong API key (Authorization: Bearer <key>)');
    }
  });
  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.observeApiRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // Our own line rather than fastify's request logging, which logs headers (the key).
    log.debug({ method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'api request');
  });

  app.setErrorHandler((error: FastifyError | ApiError | UidpushError | UnavailableError, request, reply) => {
    if (error instanceof ApiError) return sendError(reply, error.status, error.code, error.message);
    // The broker failed or did not answer within brokerTimeout; nothing was delivered.
    if (error instanceof UnavailableError) {
      reply.header('retry-after', '1');
      return sendError(reply, 503, ErrorCode.Unavailable, error.message);
    }
    if (error instanceof UidpushError && error.code === ProgramErrorCode.InvalidArgument) {
      return sendError(reply, 400, ErrorCode.BadRequest, error.message);
    }
    // The request is well-formed; the state it would grow is full. Leaving frees it.
    if (isLimitExceeded(error)) return sendError(reply, 409, ErrorCode.LimitExceeded, error.message);
    const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if ('validation' in error && error.validation !== undefined) {
      return sendError(reply, 400, ErrorCode.BadRequest, error.message);
    }
    if (status === 413) return sendError(reply, 413, ErrorCode.TooLarge, `body over ${options.bodyLimit} bytes`);
    if (status === 415) {
      return sendError(reply, 415, ErrorCode.UnsupportedMediaType, 'send the body as application/json');
    }
    if (status >= 400 && status < 500) return sendError(reply, status, ErrorCode.BadRequest, error.message);
    // The last resort: fastify catches what a route throws or rejects with, so one
    // request's bug is answered 500 here and the process and other requests carry on.
    metrics.internalError('api');
    log.error({ err: error, method: request.method, route: request.routeOptions.url ?? request.url }, 'server API error');
    return sendError(reply, 500, ErrorCode.Internal, 'internal error');
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 404, ErrorCode.NotFound, `no route ${request.method} ${request.url.split('?')[0] ?? ''}`);
  });

  // One plugin per resource, each in its own encapsulated context: the hooks and handlers
  // above are the root's, so every plugin inherits the key check, metrics and error mapping.
  const { service, maxUids, maxUidLength } = options;
  app.register(healthRoutes, { service });
  app.register(metricsRoutes, { metrics });
  app.register(pushRoutes, { service, maxUids, maxUidLength });
  app.register(usersRoutes, { service, maxUidLength });
  app.register(groupsRoutes, { service, maxUidLength });
  app.register(statsRoutes, { service });

  return app;
}

import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type RouteShorthandOptions,
} from 'fastify';
import { fitsCloseReason } from '../core/close-codes.js';
import { ErrorCode, ProgramErrorCode, UidpushError, UnavailableError } from '../core/errors.js';
import { exceedsJsonDepth } from '../core/json-depth.js';
import { isLimitExceeded } from '../core/limits.js';
import { checkName, type NameKind } from '../core/names.js';
import { isLocalOrigin, isLoopbackHostHeader } from '../core/origins.js';
import type { PushService } from '../core/service.js';
import type { JsonValue, Logger } from '../core/types.js';
import type { Metrics } from '../metrics/metrics.js';
import { makeKeyCheck } from './api-key.js';
import { apiServerOptions, guardApiServer, type ApiConnectionLimits, type ApiTls } from './connection-limits.js';

/** Options of the server API. */
export interface ApiOptions {
  service: PushService;
  metrics: Metrics;
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

/** The JSON error body of every failed request. */
export interface ApiErrorBody {
  error: { code: ErrorCode; message: string };
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
type Method = (typeof METHODS)[number];

/** A refusal raised inside a handler; the error handler turns it into the JSON body. */
class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode;

  constructor(status: number, code: ErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } } satisfies ApiErrorBody);
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
    return sendError(reply, 403, ErrorCode.Forbidden, 'keyless server API: the Host header must name a loopback address (set an API key to serve other names)');
  }
  if (!isLocalOrigin(origin)) {
    return sendError(reply, 403, ErrorCode.Forbidden, 'keyless server API: requests from pages of other origins are refused (set an API key)');
  }
  return undefined;
}

const dataSchema = {}; // any JSON value
/** A body of exactly `{ "data": <any JSON> }`. */
const dataBodySchema = {
  type: 'object',
  properties: { data: dataSchema },
  required: ['data'],
  additionalProperties: false,
};

/**
 * Builds the HTTP+JSON server API (fastify) on a {@link PushService}. The caller listens.
 * Routes are documented in docs/http-api.md.
 */
export function createApi(options: ApiOptions): FastifyInstance {
  const { service, metrics, maxUids, maxUidLength } = options;
  const log = options.logger;
  const common = {
    logger: false,
    bodyLimit: options.bodyLimit,
    // Wrong types are errors, never coerced or silently removed.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    // A uid in the path is percent-encoded: up to 3 characters per byte.
    routerOptions: { maxParamLength: maxUidLength * 3 + 16 },
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
    log.debug(
      { method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 },
      'api request',
    );
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

  /**
   * Registers a resource's methods, and 405 with an Allow header for every other method.
   * A public resource (health) needs no API key.
   */
  const resource = (
    url: string,
    handlers: Partial<Record<Method, RouteShorthandOptions & { handler: (req: FastifyRequest, reply: FastifyReply) => unknown }>>,
    visibility: { public: boolean } = { public: false },
  ): void => {
    const config = { public: visibility.public };
    const allowed = Object.keys(handlers) as Method[];
    for (const method of allowed) {
      const { handler, ...rest } = handlers[method] ?? {};
      if (handler !== undefined) app.route({ method, url, ...rest, config, handler });
    }
    if (allowed.includes('GET')) allowed.push('HEAD'); // fastify answers HEAD for GET routes
    const others = METHODS.filter((m) => !allowed.includes(m));
    app.route({
      method: others,
      url,
      config,
      handler: (request, reply) => {
        reply.header('allow', allowed.join(', '));
        return sendError(reply, 405, ErrorCode.MethodNotAllowed, `${request.method} is not allowed on ${url}; use ${allowed.join(', ')}`);
      },
    });
  };

  // The name rules of every entry point (docs/protocol.md, "Names"); `where` is the field.
  const checkNameAt = (name: string, kind: NameKind, where: string): void => {
    const refusal = checkName(name, kind, maxUidLength);
    if (refusal !== undefined) throw new ApiError(400, ErrorCode.BadRequest, `${where}: ${refusal}`);
  };
  const checkUid = (uid: string, where: string): void => {
    checkNameAt(uid, 'uid', where);
  };

  resource('/healthz', { GET: { handler: () => ({ status: 'ok' }) } }, { public: true });
  resource(
    '/readyz',
    {
      GET: {
        handler: (_req, reply) =>
          service.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not_ready' }),
      },
    },
    { public: true },
  );
  resource('/metrics', {
    GET: {
      // Under --workers, the whole group's (Metrics.exposition); 503 if a worker is silent.
      handler: async (_req, reply) => reply.type(metrics.contentType).send(await metrics.exposition()),
    },
  });

  resource('/v1/push', {
    POST: {
      schema: {
        body: {
          type: 'object',
          properties: {
            uid: { type: 'string' },
            uids: { type: 'array', items: { type: 'string' }, minItems: 1 },
            data: dataSchema,
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
          checkUid(uid, body.uids === undefined ? 'body/uid' : `body/uids/${i}`);
        });
        return service.pushToUids(uids, body.data);
      },
    },
  });

  resource('/v1/broadcast', {
    POST: {
      schema: { body: dataBodySchema },
      handler: (request) => service.broadcast((request.body as { data: JsonValue }).data),
    },
  });

  resource('/v1/users', {
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

  resource('/v1/users/:uid', {
    GET: {
      handler: async (request) => {
        const { uid } = request.params as { uid: string };
        checkUid(uid, 'params/uid');
        const connections = await service.connectionsOf(uid);
        return { uid, online: connections > 0, connections };
      },
    },
  });

  resource('/v1/users/:uid/groups', {
    DELETE: {
      handler: async (request) => {
        const { uid } = request.params as { uid: string };
        checkUid(uid, 'params/uid');
        return { uid, left: await service.leaveAll(uid) };
      },
    },
  });

  resource('/v1/users/:uid/kick', {
    POST: {
      schema: {
        body: {
          type: ['object', 'null'],
          properties: { reason: { type: 'string', maxLength: 100 }, revokeTokens: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
      handler: async (request) => {
        const { uid } = request.params as { uid: string };
        checkUid(uid, 'params/uid');
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

  resource('/v1/stats', {
    GET: { handler: () => service.stats() },
  });

  const groupParams = (request: FastifyRequest): { group: string; uid?: string } => {
    const params = request.params as { group: string; uid?: string };
    checkNameAt(params.group, 'group', 'params/group');
    if (params.uid !== undefined) checkUid(params.uid, 'params/uid');
    return params;
  };

  resource('/v1/groups/:group', {
    GET: { handler: (request) => service.groupInfo(groupParams(request).group) },
  });

  resource('/v1/groups/:group/members/:uid', {
    PUT: {
      handler: async (request) => {
        const { group, uid = '' } = groupParams(request);
        return { group, uid, added: await service.join(group, uid) };
      },
    },
    DELETE: {
      handler: async (request) => {
        const { group, uid = '' } = groupParams(request);
        return { group, uid, removed: await service.leave(group, uid) };
      },
    },
  });

  resource('/v1/groups/:group/push', {
    POST: {
      schema: { body: dataBodySchema },
      handler: (request) => {
        const { group } = groupParams(request);
        return service.publish(group, (request.body as { data: JsonValue }).data);
      },
    },
  });

  return app;
}

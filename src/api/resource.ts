import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from 'fastify';
import { ErrorCode } from '../core/errors.js';
import { checkName, type NameKind } from '../core/names.js';

/** The JSON error body of every failed request. */
export interface ApiErrorBody {
  error: { code: ErrorCode; message: string };
}

/** A refusal raised inside a handler; the API's error handler turns it into the JSON body. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: ErrorCode;

  constructor(status: number, code: ErrorCode, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Answers `status` with the JSON error body. */
export function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error: { code, message } } satisfies ApiErrorBody);
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
/** An HTTP method the API answers (every other one is fastify's 404). */
export type Method = (typeof METHODS)[number];

/** A route's schema and handler, as `app.route` takes them without method and url. */
export type Handler = RouteShorthandOptions & { handler: (req: FastifyRequest, reply: FastifyReply) => unknown };

/** What the API key check reads from a route's config: a public route needs no key. */
export interface RouteVisibility {
  public: boolean;
}

/**
 * Registers a resource's methods on `app` (a resource plugin's instance), and 405 with an
 * Allow header for every other method, so a wrong method is told which ones exist rather
 * than answered 404. A public resource (health) needs no API key.
 */
export function resource(
  app: FastifyInstance,
  url: string,
  handlers: Partial<Record<Method, Handler>>,
  visibility: RouteVisibility = { public: false },
): void {
  const config: RouteVisibility = { public: visibility.public };
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
}

/** The JSON schema of any JSON value. */
export const anyJson = {};

/** A body of exactly `{ "data": <any JSON> }`. */
export const dataBodySchema = {
  type: 'object',
  properties: { data: anyJson },
  required: ['data'],
  additionalProperties: false,
};

/**
 * Applies the name rules of every entry point (docs/protocol.md, "Names") to a uid or group
 * of a request; `where` is the field (`params/uid`, `body/uids/3`), named in the 400's message.
 * @throws ApiError 400 for a name the rules refuse.
 */
export function checkNameAt(name: string, kind: NameKind, maxUidLength: number, where: string): void {
  const refusal = checkName(name, kind, maxUidLength);
  if (refusal !== undefined) throw new ApiError(400, ErrorCode.BadRequest, `${where}: ${refusal}`);
}

import { z } from 'zod';
import { isLoopback } from '../api/auth.js';
import { compileOrigins } from '../core/origins.js';
import { RIGHTS } from '../auth/rights.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';

const ms = (min: number) => z.number().int().min(min).max(24 * 3600 * 1000);

/**
 * The schema of every server option, with its default. The CLI validates the merged
 * flags, environment and config file against it; createServer validates what it is
 * given. Documented in the README's configuration table.
 */
export const serverOptionsSchema = z
  .object({
    /** Address to listen on. Loopback by default: nothing is exposed by accident. */
    host: z.string().min(1).default('127.0.0.1'),
    /** Port to listen on; 0 picks a free one. 1234, as the seed. */
    port: z.number().int().min(0).max(65535).default(1234),
    /** Largest message accepted from a client, in bytes (at most 16 MiB). */
    maxMessageSize: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .default(64 * 1024),
    /** Longest uid, in UTF-8 bytes. */
    maxUidLength: z.number().int().min(1).max(1024).default(128),
    /** Messages per second one connection may send; 0 turns the limit off. */
    rateLimit: z.number().min(0).max(1_000_000).default(100),
    /** Messages one connection may send in a burst above the rate. */
    rateBurst: z.number().int().min(1).max(1_000_000).default(200),
    /** How often each connection is pinged, in ms. */
    heartbeatInterval: ms(10).default(25_000),
    /** A connection that sends nothing (pongs included) for this long is dropped, in ms. */
    idleTimeout: ms(20).default(60_000),
    /** A connection that has not logged in after this long is closed with 4002, in ms. */
    loginTimeout: ms(10).default(10_000),
    /** Bytes a connection may have waiting to be sent before the slow-consumer policy. */
    maxBufferedBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(1024 * 1024),
    /** What to do with a connection over `maxBufferedBytes`: close it (4001) or drop. */
    slowConsumerPolicy: z.enum(['close', 'drop']).default('close'),
    /** How long shutdown waits for clients to close before terminating them, in ms. */
    shutdownGrace: ms(0).default(5_000),
    /** Address of the HTTP server API. Loopback by default. */
    apiHost: z.string().min(1).default('127.0.0.1'),
    /** Port of the HTTP server API; null turns the API off. */
    apiPort: z.number().int().min(0).max(65535).nullable().default(1235),
    /**
     * The server API's Bearer key (at least 16 characters). Required when the API listens
     * on a non-loopback address.
     */
    apiKey: z.string().min(16).max(4096).optional(),
    /** Most uids in one `POST /v1/push`. */
    apiMaxUids: z.number().int().min(1).max(1_000_000).default(10_000),
    /** Largest server API request body, in bytes. */
    apiBodyLimit: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(1024 * 1024),
    /**
     * Redis URL: joins the cluster of every node on that Redis. `redis://` or `rediss://`
     * for one Redis, `redis+cluster://host:port,host:port` for a Redis Cluster,
     * `redis+sentinel://host:port,host:port/<master>` through Sentinel.
     */
    redis: z
      .string()
      .regex(
        /^(rediss?:\/\/.+|redis\+cluster:\/\/.+|redis\+sentinel:\/\/[^/]+\/.+)$/,
        'expected redis://, rediss://, redis+cluster://host:port,... or redis+sentinel://host:port,.../master',
      )
      .optional(),
    /** Prefix of every Redis key and channel, so several clusters can share one Redis. */
    redisNamespace: z.string().min(1).max(64).default('uidpush'),
    /**
     * How long a node's presence outlives it in Redis, in ms: after a node dies, its uids
     * read offline within this time. The node refreshes it every third of it.
     */
    presenceTtl: ms(1000).default(15_000),
    /** Port of the inner text port on 127.0.0.1; null (the default) turns it off. */
    innerPort: z.number().int().min(0).max(65535).nullable().default(null),
    /** HS256 secret for client tokens (at least 32 characters). Turns token auth on. */
    jwtSecret: z.string().min(32).max(4096).optional(),
    /** Path of a PEM public key (RSA: RS256, EC P-256: ES256) for client tokens. */
    jwtPublicKey: z.string().min(1).optional(),
    /** JWKS for client tokens: a file path or an http(s) URL. */
    jwks: z.string().min(1).optional(),
    /**
     * Origins whose pages may open a WebSocket: exact origins (`https://app.example.com`),
     * `https://*.example.com` (any subdomain), `http://localhost:*` (any port), `null`, or
     * `*` (any). Clients that send no Origin (not browsers) are always accepted. Unset:
     * loopback origins only with token auth off; any origin with it on. Others get 403.
     */
    allowedOrigins: z
      .array(z.string().min(1).max(2048))
      .max(10_000)
      .optional()
      .superRefine((list, ctx) => {
        const compiled = list === undefined ? undefined : compileOrigins(list);
        if (compiled?.ok === false) {
          ctx.addIssue({
            code: 'custom',
            message: `'${compiled.entry}' is not an origin (scheme://host[:port]) or pattern (*.host, :*, null, *)`,
          });
        }
      }),
    /**
     * Allow uid-as-login (no token auth) on a non-loopback address. Off by default: like
     * Redis's protected mode, the server refuses to start that way.
     */
    insecure: z.boolean().default(false),
    /**
     * Rights of a client whose token has no `rights` claim, or of every client when auth is
     * off. Default: `send` with auth on; every right (the seed's way) with auth off.
     */
    clientRights: z.array(z.enum(RIGHTS)).optional(),
  })
  .strict()
  .refine(
    (o) => [o.jwtSecret, o.jwtPublicKey, o.jwks].filter((k) => k !== undefined).length <= 1,
    { error: 'set at most one of jwtSecret, jwtPublicKey and jwks', path: ['jwtSecret'] },
  )
  .refine(
    (o) =>
      o.jwtSecret !== undefined ||
      o.jwtPublicKey !== undefined ||
      o.jwks !== undefined ||
      o.insecure ||
      isLoopback(o.host),
    {
      error:
        'protected mode: without token auth (jwtSecret, jwtPublicKey or jwks) the server only listens on loopback; set one, or insecure to accept uid-as-login on this address',
      path: ['host'],
    },
  )
  .refine((o) => o.apiPort === null || o.apiKey !== undefined || isLoopback(o.apiHost), {
    error: 'an API key (apiKey) is required when the server API listens on a non-loopback address',
    path: ['apiKey'],
  })
  .refine((o) => o.idleTimeout > o.heartbeatInterval, {
    error: 'idleTimeout must be longer than heartbeatInterval',
    path: ['idleTimeout'],
  });

/** Server options as given: every field optional. */
export type ServerOptionsInput = z.input<typeof serverOptionsSchema>;
/** Server options after validation, with defaults filled in. */
export type ResolvedServerOptions = z.output<typeof serverOptionsSchema>;

/** Whether token auth is on. */
export function authEnabled(o: ResolvedServerOptions): boolean {
  return o.jwtSecret !== undefined || o.jwtPublicKey !== undefined || o.jwks !== undefined;
}

/** The rights in force for clients without a `rights` claim. */
export function defaultClientRights(o: ResolvedServerOptions): readonly (typeof RIGHTS)[number][] {
  return o.clientRights ?? (authEnabled(o) ? ['send'] : RIGHTS);
}

/**
 * Validates options and fills in defaults.
 *
 * @throws UidpushError with code UIDPUSH_ERR_INVALID_CONFIG naming each bad field.
 */
export function resolveServerOptions(input: unknown): ResolvedServerOptions {
  const result = serverOptionsSchema.safeParse(input);
  if (result.success) return result.data;
  throw new UidpushError(
    ProgramErrorCode.InvalidConfig,
    `invalid configuration:\n${formatIssues(result.error)}`,
    { cause: result.error },
  );
}

/** One line per problem: `  - <field>: <what is wrong>`. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join('.') : '(options)';
      return `  - ${field}: ${issue.message}`;
    })
    .join('\n');
}

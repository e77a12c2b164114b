import { z } from 'zod';
import { isLoopback } from '../api/auth.js';
import { compileOrigins } from '../core/origins.js';
import { RIGHTS } from '../auth/rights.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../core/json-depth.js';

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
    /**
     * Largest message accepted from a logged-in client, in bytes (at most 16 MiB). A larger
     * frame is refused by ws before it is buffered: close 1009.
     */
    maxMessageSize: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024),
    /**
     * Largest frame a connection may send before it has logged in, in bytes (capped by
     * `maxMessageSize`): enough for an auth frame with a long token, so that a connection
     * nobody vouched for holds little memory. A larger frame closes it with 1009, unread.
     */
    maxPreLoginMessageSize: z
      .number()
      .int()
      .min(256)
      .max(16 * 1024 * 1024)
      .default(16 * 1024),
    /**
     * Connections that have not logged in yet (handshakes whose token is being checked
     * included) the server holds at once; more are refused at the upgrade with 503.
     */
    maxPendingConnections: z.number().int().min(1).max(10_000_000).default(10_000),
    /**
     * Open connections from one IP address; more are refused at the upgrade with 429. 0
     * (the default) turns the limit off: behind a reverse proxy every client has the
     * proxy's address.
     */
    maxConnectionsPerIp: z.number().int().min(0).max(10_000_000).default(0),
    /**
     * WebSocket handshakes one IP address may start per second; more are refused with 429.
     * 0 (the default) turns the limit off, for the same reason.
     */
    maxHandshakesPerIp: z.number().int().min(0).max(10_000_000).default(0),
    /**
     * How long a connection the server closes (login timeout, 1009, kick, token expiry,
     * slow consumer...) has to answer the close frame before its socket is destroyed, in ms.
     */
    closeGrace: ms(0).default(2_000),
    /** Longest uid, in UTF-8 bytes. */
    maxUidLength: z.number().int().min(1).max(1024).default(128),
    /**
     * Most levels of nested arrays and objects in client JSON data: a uidpush.v1 frame's
     * `data`, a server API body's `data`, an inner-port line (its own object is its first
     * level). Checked on the raw text before parsing; deeper input is `bad_request`.
     */
    maxJsonDepth: z.number().int().min(1).max(256).default(DEFAULT_MAX_JSON_DEPTH),
    /** Messages per second one connection may send; 0 turns the limit off. */
    rateLimit: z.number().min(0).max(1_000_000).default(100),
    /** Messages one connection may send in a burst above the rate. */
    rateBurst: z.number().int().min(1).max(1_000_000).default(200),
    /** How often each connection is pinged, in ms. */
    heartbeatInterval: ms(10).default(25_000),
    /**
     * A connection that sends nothing (pongs included) for this long is dropped, in ms.
     * Unset: 2 x `heartbeatInterval` + 10 s (60 s with the default interval), so a peer
     * misses two pings and gets 10 s more.
     */
    idleTimeout: ms(20).optional(),
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
     * How long the server API waits for a request's headers, in ms, counted from the
     * connection's opening (on a keep-alive connection, from the next request's first byte);
     * then it answers 408 and closes. 10 s: a backend sends its headers in one packet.
     */
    apiHeadersTimeout: ms(10).default(10_000),
    /**
     * How long the server API waits for a whole request (headers and body), in ms; then it
     * answers 408 and closes, whether the body never came or trickles in. 30 s: a 1 MiB
     * body needs about 8 s at 1 Mbit/s. Must be at least `apiHeadersTimeout`.
     */
    apiRequestTimeout: ms(10).default(30_000),
    /**
     * How long the server API keeps an idle keep-alive connection open between requests,
     * in ms (advertised as `Keep-Alive: timeout=`; node closes 1 s after it). 5 s, node's
     * own default, longer than undici's (fetch's) 4 s so the client closes first.
     */
    apiKeepAliveTimeout: ms(1).default(5_000),
    /**
     * Most open connections of the server API in this process; connections over it are
     * closed as soon as they are accepted. Keeps slow clients from taking the file
     * descriptors the WebSocket port needs.
     */
    apiMaxConnections: z.number().int().min(1).max(1_000_000).default(1000),
    /**
     * Most groups one uid may belong to; a join past it is refused with `limit_exceeded`
     * (API 409). Membership is kept until left, online or not.
     */
    maxGroupsPerUid: z.number().int().min(1).max(10_000_000).default(1_000),
    /** Most members one group may have; a join past it is refused with `limit_exceeded`. */
    maxMembersPerGroup: z.number().int().min(1).max(100_000_000).default(100_000),
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
    /**
     * How long a kick's token cut-off (`revokeTokens`) lasts, in ms: the uid's tokens
     * issued before the kick are refused this long. Set it to at least the longest
     * lifetime (`exp` - `iat`) of the tokens you issue; past it, an old token that has not
     * expired is accepted again.
     */
    revokeTtl: z
      .number()
      .int()
      .min(100)
      .max(30 * 24 * 3600 * 1000)
      .default(24 * 3600 * 1000),
    /**
     * How long a node waits for its broker (Redis, or the primary under `--workers`), in
     * ms. A store read, a group change or a push asking for a cluster-wide answer that
     * takes longer fails with `unavailable` (HTTP 503); `/readyz` answers 503 once Redis
     * has not answered a probe for this long; publishes older than this stop new ones; and
     * a push that reaches another node later than this is dropped there, not delivered late
     * (node clocks must be NTP-synced).
     */
    brokerTimeout: ms(100).default(2000),
    /**
     * Bytes of publishes that may wait for the broker at once; past it, pushes are not
     * published (see docs/operations.md). Protects the node's memory while Redis stalls.
     */
    brokerMaxPendingBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(4 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
    /** Port of the inner text port on 127.0.0.1; null (the default) turns it off. */
    innerPort: z.number().int().min(0).max(65535).nullable().default(null),
    /**
     * An inner-port connection that completes no line for this long, in ms, is closed:
     * an idle one, or one holding a half line that never ends.
     */
    innerIdleTimeout: ms(10).default(60_000),
    /** Most open inner-port connections; connections over it are closed once accepted. */
    innerMaxConnections: z.number().int().min(1).max(1_000_000).default(256),
    /**
     * Path of the PEM certificate (the chain after it, if any) the WebSocket port serves:
     * with `tlsKey`, the port speaks wss:// only. Read at start and on `reloadTls()`
     * (SIGHUP under the CLI).
     */
    tlsCert: z.string().min(1).optional(),
    /** Path of the PEM private key (unencrypted) of `tlsCert`. Set both or neither. */
    tlsKey: z.string().min(1).optional(),
    /**
     * Whether the server API serves https with `tlsCert`/`tlsKey`. Unset: https when
     * `apiHost` is not loopback (the key crosses a network), http on loopback (it never
     * leaves the machine, and local tools keep their http:// URL). Needs `tlsCert`.
     */
    apiTls: z.boolean().optional(),
    /** HS256 secret for client tokens (at least 32 characters). Turns token auth on. */
    jwtSecret: z.string().min(32).max(4096).optional(),
    /** Path of a PEM public key (RSA: RS256, EC P-256: ES256) for client tokens. */
    jwtPublicKey: z.string().min(1).optional(),
    /** JWKS for client tokens: a file path or an http(s) URL. */
    jwks: z.string().min(1).optional(),
    /**
     * The audience client tokens must name: when set, a token without `aud`, or whose
     * `aud` (a string, or an array) does not hold this, is refused (4502). Needs token auth.
     */
    jwtAudience: z.string().min(1).max(1024).optional(),
    /** The issuer client tokens must name: when set, `iss` must be exactly this (4502). Needs token auth. */
    jwtIssuer: z.string().min(1).max(1024).optional(),
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
    (o) => (o.jwtAudience === undefined && o.jwtIssuer === undefined) || o.jwtSecret !== undefined || o.jwtPublicKey !== undefined || o.jwks !== undefined,
    { error: 'jwtAudience and jwtIssuer check tokens: set jwtSecret, jwtPublicKey or jwks too', path: ['jwtAudience'] },
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
  .superRefine((o, ctx) => {
    // Named after the one that is missing.
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'set both tlsCert and tlsKey, or neither', path: [o.tlsCert === undefined ? 'tlsCert' : 'tlsKey'] });
    }
  })
  .refine((o) => o.apiTls !== true || o.tlsCert !== undefined, {
    error: 'apiTls needs a certificate: set tlsCert and tlsKey',
    path: ['apiTls'],
  })
  .refine((o) => o.apiHeadersTimeout <= o.apiRequestTimeout, {
    error: 'apiHeadersTimeout must not be longer than apiRequestTimeout',
    path: ['apiHeadersTimeout'],
  })
  .refine((o) => o.idleTimeout === undefined || o.idleTimeout > o.heartbeatInterval, {
    error: 'idleTimeout must be longer than heartbeatInterval',
    path: ['idleTimeout'],
  })
  .transform((o) => ({ ...o, idleTimeout: o.idleTimeout ?? defaultIdleTimeout(o.heartbeatInterval) }));

/** The idle timeout when none is set: two missed pings and 10 s more. */
export function defaultIdleTimeout(heartbeatInterval: number): number {
  return 2 * heartbeatInterval + 10_000;
}

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

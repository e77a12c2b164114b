import { z } from 'zod';
import { isLoopback } from '../api/api-key.js';
import { compileOrigins } from '../core/origins.js';
import { RIGHTS } from '../auth/rights.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import { parseDelivery, RETENTION_DEFAULTS } from '../core/inbox.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../core/json-depth.js';

/** Where `uidpush serve --help` lists an option; `cluster` options form the README's Clusters table. */
export type OptionSection = 'websocket' | 'limits' | 'liveness' | 'api' | 'inner' | 'groups' | 'inbox' | 'auth' | 'cluster' | 'cli';

/**
 * The documentation of one option, kept on its schema: `uidpush serve --help` and the
 * README's configuration tables (`npm run docs:options`) are generated from it, so neither
 * can drift from what the server accepts.
 */
export interface OptionDoc {
  /**
   * What it does: the one text of the option. Markdown code spans; one that names an option
   * (`heartbeatInterval`) is shown as its flag in the terminal.
   */
  description: string;
  section: OptionSection;
  /** The unit of a number: shown beside its flag and its default. */
  unit?: 'ms' | 'bytes' | 'per second';
  /**
   * The default in words, for a default no single value says (derived, or depending on
   * other options). Markdown. Otherwise the schema's default is shown, with its unit.
   */
  default?: string;
  /** The flag's value as --help shows it (`<url>`); otherwise derived from the type and unit. */
  arg?: string;
  /**
   * What `uidpush serve` uses when the option is not set, where that differs from
   * `createServer`'s default (the CLI serves the API; an embedded server does not).
   */
  cliDefault?: number | string | boolean;
}

/**
 * The option documentation registry. To add an option: a field in the schema below with
 * `.register(optionDocs, {...})`, its kind in src/cli/config.ts (the compiler asks for it),
 * then `npm run docs:options` to regenerate the README tables (a test fails until then).
 */
export const optionDocs = z.registry<OptionDoc>();

const ms = (min: number) =>
  z
    .number()
    .int()
    .min(min)
    .max(24 * 3600 * 1000);

/** The fields of {@link serverOptionsSchema}, before the checks across fields. */
export const serverOptionFields = z
  .object({
    host: z.string().min(1).default('127.0.0.1').register(optionDocs, {
      section: 'websocket',
      arg: '<address>',
      description: 'Address the WebSocket port listens on. Loopback by default: nothing is exposed by accident.',
    }),
    port: z.number().int().min(0).max(65535).default(1234).register(optionDocs, {
      section: 'websocket',
      arg: '<port>',
      description: "Port of the WebSocket listener (the seed protocol's 1234); `0` takes any free port.",
    }),
    maxMessageSize: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .default(1024 * 1024)
      .register(optionDocs, {
        section: 'limits',
        unit: 'bytes',
        description: 'Largest message of a logged-in client (at most 16 MiB); a larger one is refused unread with close 1009.',
      }),
    maxPreLoginMessageSize: z
      .number()
      .int()
      .min(256)
      .max(16 * 1024 * 1024)
      .default(16 * 1024)
      .register(optionDocs, {
        section: 'limits',
        unit: 'bytes',
        description:
          'Largest frame before login (at most `maxMessageSize`): enough for an auth frame with a long token. A larger one, even unfinished, closes with 1009.',
      }),
    maxPendingConnections: z.number().int().min(1).max(10_000_000).default(10_000).register(optionDocs, {
      section: 'limits',
      description: 'Connections not logged in yet (handshakes being verified included); more get HTTP 503 at the upgrade.',
    }),
    maxConnectionsPerIp: z.number().int().min(0).max(10_000_000).default(0).register(optionDocs, {
      section: 'limits',
      default: '`0` (off)',
      description: 'Open connections per client address; more get HTTP 429. Off by default: behind a proxy every client has its address.',
    }),
    maxHandshakesPerIp: z.number().int().min(0).max(10_000_000).default(0).register(optionDocs, {
      section: 'limits',
      unit: 'per second',
      default: '`0` (off)',
      description: 'Handshakes per client address per second; more get HTTP 429.',
    }),
    closeGrace: ms(0).default(2_000).register(optionDocs, {
      section: 'liveness',
      unit: 'ms',
      description:
        'How long a peer the server closes (login timeout, 1009, kick, token expiry, slow consumer...) has to answer the close frame before its socket is destroyed.',
    }),
    maxUidLength: z.number().int().min(1).max(1024).default(128).register(optionDocs, {
      section: 'limits',
      unit: 'bytes',
      description: 'Longest uid, in UTF-8 bytes.',
    }),
    maxJsonDepth: z.number().int().min(1).max(256).default(DEFAULT_MAX_JSON_DEPTH).register(optionDocs, {
      section: 'limits',
      description:
        'Most levels of nested arrays and objects in client JSON data (v1 `data`, API body `data`, an inner-port line), checked before parsing; deeper: `bad_request` / 400.',
    }),
    rateLimit: z.number().min(0).max(1_000_000).default(100).register(optionDocs, {
      section: 'limits',
      unit: 'per second',
      description: 'Messages per second one connection may send (token bucket); `0` turns the limit off.',
    }),
    rateBurst: z.number().int().min(1).max(1_000_000).default(200).register(optionDocs, {
      section: 'limits',
      description: 'Messages a connection may send at once above the rate.',
    }),
    heartbeatInterval: ms(10).default(25_000).register(optionDocs, {
      section: 'liveness',
      unit: 'ms',
      description: 'Time between pings of each connection.',
    }),
    idleTimeout: ms(20).optional().register(optionDocs, {
      section: 'liveness',
      unit: 'ms',
      default: '2 x `heartbeatInterval` + 10 s (`60000`)',
      description:
        'Time without any frame (pongs count) before a connection is dropped as dead; must exceed `heartbeatInterval`. The default lets a peer miss two pings and gives it 10 s more.',
    }),
    loginTimeout: ms(10).default(10_000).register(optionDocs, {
      section: 'liveness',
      unit: 'ms',
      description: 'How long a connection may stay without logging in (then closed with 4002).',
    }),
    maxBufferedBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(1024 * 1024)
      .register(optionDocs, {
        section: 'limits',
        unit: 'bytes',
        description: 'Bytes a connection may have waiting to be sent; past it, `slowConsumerPolicy` applies.',
      }),
    slowConsumerPolicy: z.enum(['close', 'drop']).default('close').register(optionDocs, {
      section: 'limits',
      arg: '<close|drop>',
      description:
        'Over `maxBufferedBytes`: `close` (4001, the client may reconnect) or `drop` (that message is skipped for that connection).',
    }),
    shutdownGrace: ms(0).default(5_000).register(optionDocs, {
      section: 'liveness',
      unit: 'ms',
      description: 'How long shutdown waits for clients to close before terminating them.',
    }),
    inbox: z.boolean().default(false).register(optionDocs, {
      section: 'inbox',
      description:
        'Keeps a per-user inbox (docs/delivery.md): pushes to a uid are retained, v1 devices recover what they missed on reconnect, acks move their cursors. Memory alone, the primary under `--workers`, Redis with `redis`.',
    }),
    defaultDelivery: z
      .string()
      .refine((text) => typeof parseDelivery(text) !== 'string', { error: 'expected durable, ephemeral or latest:<key>' })
      .optional()
      .register(optionDocs, {
        section: 'inbox',
        arg: '<class>',
        default: '`durable` with `inbox`, else `ephemeral`',
        description: 'The delivery class of a push to uids that names none: `durable`, `ephemeral` or `latest:<key>`.',
      }),
    inboxSize: z.number().int().min(1).max(100_000).default(RETENTION_DEFAULTS.size).register(optionDocs, {
      section: 'inbox',
      description: 'Offsets kept per uid: the newest ones (a replaced `latest` value still counts).',
    }),
    inboxTtl: ms(10).default(RETENTION_DEFAULTS.ttlMs).register(optionDocs, {
      section: 'inbox',
      unit: 'ms',
      description: 'How long a retained push is kept.',
    }),
    inboxMetaTtl: z
      .number()
      .int()
      .min(1000)
      .max(365 * 24 * 3600_000)
      .default(RETENTION_DEFAULTS.metaTtlMs)
      .register(optionDocs, {
        section: 'inbox',
        unit: 'ms',
        description:
          "How long a uid's epoch, top offset and device cursors outlive its last use, so a quiet device recovers with nothing missed.",
      }),
    inboxIdempotencyTtl: ms(1000).default(RETENTION_DEFAULTS.idempotencyMs).register(optionDocs, {
      section: 'inbox',
      unit: 'ms',
      description: "How long a push's `idempotencyKey` answers the first push's position, retaining nothing new.",
    }),
    inboxMaxDevices: z.number().int().min(1).max(1024).default(RETENTION_DEFAULTS.maxDevices).register(optionDocs, {
      section: 'inbox',
      description: 'Devices remembered per uid; past it, the one seen longest ago is forgotten.',
    }),
    inboxMemory: z
      .number()
      .int()
      .min(1024 * 1024)
      .max(64 * 1024 * 1024 * 1024)
      .default(RETENTION_DEFAULTS.memoryBytes)
      .register(optionDocs, {
        section: 'inbox',
        unit: 'bytes',
        description:
          'Bytes of retained data the memory engine keeps in all (one process, or the primary of `--workers`); past it, idle uids lose their data first, never their epoch and cursors.',
      }),
    apiHost: z.string().min(1).default('127.0.0.1').register(optionDocs, {
      section: 'api',
      arg: '<address>',
      description: 'Address of the HTTP server API.',
    }),
    apiPort: z.number().int().min(0).max(65535).nullable().default(null).register(optionDocs, {
      section: 'api',
      arg: '<port|off>',
      cliDefault: 1235,
      description:
        'Port of the HTTP server API; `off` (null) turns it off. `uidpush serve` opens it on 1235 unless told otherwise; an embedded server (`createServer`) opens it only when given a port.',
    }),
    apiKey: z.string().min(16).max(4096).optional().register(optionDocs, {
      section: 'api',
      arg: '<key>',
      description: 'Bearer key of the server API (16+ characters); required when `apiHost` is not loopback.',
    }),
    apiMaxUids: z.number().int().min(1).max(1_000_000).default(10_000).register(optionDocs, {
      section: 'api',
      description: 'Most uids in one `POST /v1/push`.',
    }),
    apiBodyLimit: z
      .number()
      .int()
      .min(1024)
      .max(256 * 1024 * 1024)
      .default(1024 * 1024)
      .register(optionDocs, {
        section: 'api',
        unit: 'bytes',
        description: 'Largest API body (413 above), and longest inner-port line.',
      }),
    apiHeadersTimeout: ms(10).default(10_000).register(optionDocs, {
      section: 'api',
      unit: 'ms',
      description:
        "Time to receive a request's headers, from the connection's opening (on a keep-alive connection, from the next request's first byte); then 408 and close.",
    }),
    apiRequestTimeout: ms(10).default(30_000).register(optionDocs, {
      section: 'api',
      unit: 'ms',
      description:
        'Time to receive a whole request, body included (then 408 and close), whether the body never came or trickles in; at least `apiHeadersTimeout`. A 1 MiB body needs about 8 s at 1 Mbit/s.',
    }),
    apiKeepAliveTimeout: ms(1).default(5_000).register(optionDocs, {
      section: 'api',
      unit: 'ms',
      description:
        "How long an idle keep-alive API connection stays open (advertised as `Keep-Alive: timeout=`); node's default, longer than fetch's 4 s so the client closes first.",
    }),
    apiMaxConnections: z.number().int().min(1).max(1_000_000).default(1000).register(optionDocs, {
      section: 'api',
      description:
        'Open API connections per process; more are closed at once, so slow clients cannot take the file descriptors the WebSocket port needs.',
    }),
    maxGroupsPerUid: z.number().int().min(1).max(10_000_000).default(1_000).register(optionDocs, {
      section: 'groups',
      description:
        'Groups one uid may belong to (membership is kept until left, online or not); a join past it gets `limit_exceeded` (API 409).',
    }),
    maxMembersPerGroup: z.number().int().min(1).max(100_000_000).default(100_000).register(optionDocs, {
      section: 'groups',
      description: 'Members one group may have; a join past it gets `limit_exceeded` (API 409).',
    }),
    innerPort: z.number().int().min(0).max(65535).nullable().default(null).register(optionDocs, {
      section: 'inner',
      arg: '<port|off>',
      description: 'Inner text port on 127.0.0.1 (NDJSON `{"uid":...}` lines, answered `ok`/`fail`, as in the Workerman docs).',
    }),
    innerIdleTimeout: ms(10).default(60_000).register(optionDocs, {
      section: 'inner',
      unit: 'ms',
      description: 'How long an inner-port connection may go without completing a line (idle, or holding a half line) before it is closed.',
    }),
    innerMaxConnections: z.number().int().min(1).max(1_000_000).default(256).register(optionDocs, {
      section: 'inner',
      description: 'Open inner-port connections; more are closed at once.',
    }),
    tlsCert: z.string().min(1).optional().register(optionDocs, {
      section: 'websocket',
      arg: '<file.pem>',
      default: 'none (ws://)',
      description:
        'PEM certificate file (its chain after it, if any) the WebSocket port serves; with `tlsKey` the port speaks wss:// only. Read at start and again on SIGHUP (`reloadTls()` when embedded); open connections keep theirs.',
    }),
    tlsKey: z.string().min(1).optional().register(optionDocs, {
      section: 'websocket',
      arg: '<file.pem>',
      description: 'PEM private key (unencrypted) of `tlsCert`; set both or neither.',
    }),
    apiTls: z.boolean().optional().register(optionDocs, {
      section: 'api',
      default: 'https off loopback, http on loopback',
      description:
        'Whether the server API serves https with `tlsCert`/`tlsKey`. Unset: https when `apiHost` is not loopback (the key crosses a network), http on loopback (local tools keep their http:// URL). Needs `tlsCert`.',
    }),
    jwtSecret: z.string().min(32).max(4096).optional().register(optionDocs, {
      section: 'auth',
      arg: '<secret>',
      description: 'HS256 secret for client tokens (32+ characters); turns token auth on.',
    }),
    jwtPublicKey: z.string().min(1).optional().register(optionDocs, {
      section: 'auth',
      arg: '<file.pem>',
      description: 'PEM public key file for client tokens: RSA (RS256) or EC P-256 (ES256); turns token auth on.',
    }),
    jwks: z.string().min(1).optional().register(optionDocs, {
      section: 'auth',
      arg: '<file|url>',
      description: 'JWKS for client tokens: a file path or an https URL (RS256/ES256 by `kid`); turns token auth on.',
    }),
    jwtAudience: z.string().min(1).max(1024).optional().register(optionDocs, {
      section: 'auth',
      arg: '<aud>',
      description:
        'When set, tokens must carry this `aud` (a string, or an array holding it); others are refused (4502). Needs token auth.',
    }),
    jwtIssuer: z.string().min(1).max(1024).optional().register(optionDocs, {
      section: 'auth',
      arg: '<iss>',
      description: "When set, a token's `iss` must be exactly this (4502). Needs token auth.",
    }),
    revokeTtl: z
      .number()
      .int()
      .min(100)
      .max(30 * 24 * 3600 * 1000)
      .default(24 * 3600 * 1000)
      .register(optionDocs, {
        section: 'auth',
        unit: 'ms',
        description:
          "How long a kick's token cut-off (`revokeTokens`) lasts; set it to at least your tokens' longest lifetime (`exp` - `iat`), or an old token is accepted again after it.",
      }),
    insecure: z.boolean().default(false).register(optionDocs, {
      section: 'auth',
      description:
        "Allow uid-as-login (no token auth) on a non-loopback `host`. Off by default: like Redis's protected mode, the server refuses to start that way.",
    }),
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
      })
      .register(optionDocs, {
        section: 'auth',
        arg: '<origin,...>',
        default: 'loopback pages with auth off; any with auth on',
        description:
          'Origins whose pages may open a WebSocket (comma list: `https://app.example.com`, `https://*.example.com`, `http://localhost:*`, `null`, `*`); others get 403. Clients without an `Origin` are always accepted.',
      }),
    clientRights: z
      .array(z.enum(RIGHTS))
      .optional()
      .register(optionDocs, {
        section: 'auth',
        arg: '<right,...>',
        default: '`send` with auth; all without',
        description: `Rights of clients whose token has no \`rights\` claim, or of every client with auth off (comma list of ${RIGHTS.map((r) => `\`${r}\``).join(', ')}).`,
      }),
    redis: z
      .string()
      .regex(
        /^(rediss?:\/\/.+|redis\+cluster:\/\/.+|redis\+sentinel:\/\/[^/]+\/.+)$/,
        'expected redis://, rediss://, redis+cluster://host:port,... or redis+sentinel://host:port,.../master',
      )
      .optional()
      .register(optionDocs, {
        section: 'cluster',
        arg: '<url>',
        description:
          '`redis://host:6379` (or `rediss://`), `redis+cluster://h1:p1,h2:p2` or `redis+sentinel://h1:p1/<master>`; joins every node on it into one cluster.',
      }),
    redisNamespace: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[^{}]+$/, { error: 'may not hold { or }: they would change the Redis Cluster hash tag of every key' })
      .default('uidpush')
      .register(optionDocs, {
        section: 'cluster',
        arg: '<prefix>',
        description: 'Prefix of keys and channels, so several clusters can share one Redis.',
      }),
    presenceTtl: ms(1000).default(15_000).register(optionDocs, {
      section: 'cluster',
      unit: 'ms',
      description: "How long a dead node's uids stay online (each node refreshes its presence every third of it).",
    }),
    brokerTimeout: ms(100).default(2000).register(optionDocs, {
      section: 'cluster',
      unit: 'ms',
      description:
        "How long a node waits for Redis (or the workers' primary): reads and cluster-wide answers fail with `unavailable` after it, `/readyz` turns 503, and a push older than it is dropped, not delivered late (node clocks must be NTP-synced).",
    }),
    brokerMaxPendingBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(4 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024)
      .register(optionDocs, {
        section: 'cluster',
        unit: 'bytes',
        description:
          "Bytes of publishes that may wait for Redis; past it (or past `brokerTimeout` of waiting) pushes reach this node's clients only.",
      }),
  })
  .strict();

/**
 * The schema of every server option, with its default and its {@link optionDocs} entry. The
 * CLI validates the merged flags, environment and config file against it; createServer
 * validates what it is given.
 */
export const serverOptionsSchema = serverOptionFields
  .refine((o) => [o.jwtSecret, o.jwtPublicKey, o.jwks].filter((k) => k !== undefined).length <= 1, {
    error: 'set at most one of jwtSecret, jwtPublicKey and jwks',
    path: ['jwtSecret'],
  })
  .refine(
    (o) =>
      (o.jwtAudience === undefined && o.jwtIssuer === undefined) ||
      o.jwtSecret !== undefined ||
      o.jwtPublicKey !== undefined ||
      o.jwks !== undefined,
    { error: 'jwtAudience and jwtIssuer check tokens: set jwtSecret, jwtPublicKey or jwks too', path: ['jwtAudience'] },
  )
  .refine((o) => o.jwtSecret !== undefined || o.jwtPublicKey !== undefined || o.jwks !== undefined || o.insecure || isLoopback(o.host), {
    error:
      'protected mode: without token auth (jwtSecret, jwtPublicKey or jwks) the server only listens on loopback; set one, or insecure to accept uid-as-login on this address',
    path: ['host'],
  })
  .refine((o) => o.apiPort === null || o.apiKey !== undefined || isLoopback(o.apiHost), {
    error: 'an API key (apiKey) is required when the server API listens on a non-loopback address',
    path: ['apiKey'],
  })
  .superRefine((o, ctx) => {
    // Named after the one that is missing.
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'set both tlsCert and tlsKey, or neither',
        path: [o.tlsCert === undefined ? 'tlsCert' : 'tlsKey'],
      });
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
  throw new UidpushError(ProgramErrorCode.InvalidConfig, `invalid configuration:\n${formatIssues(result.error)}`, { cause: result.error });
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

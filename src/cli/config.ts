import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import { formatIssues, optionDocs, resolveServerOptions, serverOptionFields, type ResolvedServerOptions } from '../server/options.js';
import { loadTlsSync, tlsPaths } from '../server/tls.js';

/** How the CLI reads an option's text from a flag or a variable. */
export type OptionKind = 'string' | 'number' | 'port-or-off' | 'boolean' | 'list';

/** Each server option the CLI sets, with how its text is read. */
export const OPTION_KINDS = {
  host: 'string',
  port: 'number',
  maxMessageSize: 'number',
  maxPreLoginMessageSize: 'number',
  maxPendingConnections: 'number',
  maxConnectionsPerIp: 'number',
  maxHandshakesPerIp: 'number',
  closeGrace: 'number',
  maxUidLength: 'number',
  maxJsonDepth: 'number',
  rateLimit: 'number',
  rateBurst: 'number',
  heartbeatInterval: 'number',
  idleTimeout: 'number',
  loginTimeout: 'number',
  maxBufferedBytes: 'number',
  slowConsumerPolicy: 'string',
  shutdownGrace: 'number',
  apiHost: 'string',
  apiPort: 'port-or-off',
  apiKey: 'string',
  apiMaxUids: 'number',
  apiBodyLimit: 'number',
  apiHeadersTimeout: 'number',
  apiRequestTimeout: 'number',
  apiKeepAliveTimeout: 'number',
  apiMaxConnections: 'number',
  innerPort: 'port-or-off',
  innerIdleTimeout: 'number',
  innerMaxConnections: 'number',
  maxGroupsPerUid: 'number',
  maxMembersPerGroup: 'number',
  jwtSecret: 'string',
  jwtPublicKey: 'string',
  jwks: 'string',
  jwtAudience: 'string',
  jwtIssuer: 'string',
  tlsCert: 'string',
  tlsKey: 'string',
  apiTls: 'boolean',
  revokeTtl: 'number',
  insecure: 'boolean',
  allowedOrigins: 'list',
  clientRights: 'list',
  redis: 'string',
  redisNamespace: 'string',
  presenceTtl: 'number',
  inbox: 'boolean',
  defaultDelivery: 'string',
  inboxSize: 'number',
  inboxTtl: 'number',
  inboxMetaTtl: 'number',
  inboxIdempotencyTtl: 'number',
  inboxMaxDevices: 'number',
  inboxMemory: 'number',
  brokerTimeout: 'number',
  brokerMaxPendingBytes: 'number',
} as const satisfies Record<keyof ResolvedServerOptions, OptionKind>;

type OptionKey = keyof typeof OPTION_KINDS;
/** The server options, in the schema's order (the order of --help and the README). */
export const OPTION_KEYS = Object.keys(serverOptionFields.shape) as OptionKey[];

/** `maxMessageSize` -> `max-message-size`. */
export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `maxMessageSize` -> `UIDPUSH_MAX_MESSAGE_SIZE`. */
export function envName(key: string): string {
  return `UIDPUSH_${flagName(key).replace(/-/g, '_').toUpperCase()}`;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A pino log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The settings of `uidpush serve` that are not server options, documented like them.
 * `logLevel` is a config file key too; `config` and `workers` are flags and variables only.
 */
export const serveOnlyFields = z.object({
  config: z.string().optional().register(optionDocs, {
    section: 'cli',
    arg: '<file.json>',
    description: 'JSON config file: an object with the option names as keys, plus logLevel.',
  }),
  logLevel: z
    .enum(LOG_LEVELS)
    .default('info')
    .register(optionDocs, {
      section: 'cli',
      arg: '<level>',
      description: `pino level: ${LOG_LEVELS.join(', ')}. \`debug\` adds a line per login, close, refused login and API request.`,
    }),
  workers: z.number().int().min(0).max(64).default(0).register(optionDocs, {
    section: 'cluster',
    arg: '<n>',
    description: 'node:cluster workers sharing the ports (at most 64); `0`: this process serves alone.',
  }),
});

/** How the CLI reads each of {@link serveOnlyFields}. */
export const SERVE_ONLY_KINDS = { config: 'string', logLevel: 'string', workers: 'number' } as const satisfies Record<
  keyof typeof serveOnlyFields.shape,
  OptionKind
>;

/** What `uidpush serve` runs with. */
export interface ServeConfig {
  server: ResolvedServerOptions;
  logLevel: LogLevel;
  /** node:cluster workers sharing the port; 0: this process serves alone. */
  workers: number;
}

/** The flags of `uidpush serve`, for node:util parseArgs. */
export const SERVE_FLAGS = {
  config: { type: 'string' },
  workers: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  ...Object.fromEntries(OPTION_KEYS.map((k) => [flagName(k), { type: OPTION_KINDS[k] === 'boolean' ? 'boolean' : 'string' }])),
} as const satisfies Record<string, { type: 'string' | 'boolean'; short?: string }>;

const fileSchema = z
  .object({
    logLevel: z.enum(LOG_LEVELS).optional(),
    ...Object.fromEntries(OPTION_KEYS.map((k) => [k, z.unknown().optional()])),
  })
  .strict();

/**
 * Builds the serve configuration from, in rising precedence: defaults, the JSON config
 * file (`--config` or UIDPUSH_CONFIG), UIDPUSH_* environment variables, and flags.
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_CONFIG with one line per problem, naming the
 *   flag, variable or file it came from.
 */
export async function loadServeConfig(flags: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv): Promise<ServeConfig> {
  const merged: Record<string, unknown> = {};
  const problems: string[] = [];
  let logLevel: unknown = undefined;

  const configPath = str(flags.config) ?? env.UIDPUSH_CONFIG;
  if (configPath !== undefined) {
    const file = await readConfigFile(configPath);
    const parsed = fileSchema.safeParse(file);
    if (!parsed.success) {
      throw new UidpushError(ProgramErrorCode.InvalidConfig, `invalid config file ${configPath}:\n${formatIssues(parsed.error)}`);
    }
    const { logLevel: fileLevel, ...rest } = parsed.data;
    Object.assign(merged, rest);
    if (fileLevel !== undefined) logLevel = fileLevel;
  }

  for (const key of OPTION_KEYS) {
    const fromEnv = env[envName(key)];
    const flag = flags[flagName(key)];
    if (typeof flag === 'boolean') {
      merged[key] = flag;
      continue;
    }
    const fromFlag = str(flag);
    const [text, source] =
      fromFlag !== undefined ? [fromFlag, `--${flagName(key)}`] : fromEnv !== undefined ? [fromEnv, envName(key)] : [undefined, ''];
    if (text === undefined) continue;
    const kind: string = OPTION_KINDS[key];
    if (kind === 'boolean') {
      const t = text.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(t)) merged[key] = true;
      else if (['0', 'false', 'no', 'off', ''].includes(t)) merged[key] = false;
      else problems.push(`  - ${source}: expected true or false, got '${text}'`);
    } else if (kind === 'list') {
      merged[key] = text
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v.length > 0);
    } else if (kind === 'port-or-off' && text.trim().toLowerCase() === 'off') {
      merged[key] = null;
    } else if (kind !== 'string') {
      const value = text.trim() === '' ? NaN : Number(text);
      if (Number.isNaN(value)) {
        const expected = kind === 'number' ? 'a number' : "a port number or 'off'";
        problems.push(`  - ${source}: expected ${expected}, got '${text}'`);
      } else {
        merged[key] = value;
      }
    } else {
      merged[key] = text;
    }
  }
  // What the CLI serves by default where createServer does not (the server API).
  for (const key of OPTION_KEYS) {
    const fallback = optionDocs.get(serverOptionFields.shape[key])?.cliDefault;
    if (merged[key] === undefined && fallback !== undefined) merged[key] = fallback;
  }
  const workersText = str(flags.workers) ?? env.UIDPUSH_WORKERS;
  const workersParsed = serveOnlyFields.shape.workers.safeParse(workersText === undefined ? undefined : Number(workersText));
  const workers = workersParsed.data ?? 0;
  if (!workersParsed.success) {
    problems.push(`  - workers (--workers / UIDPUSH_WORKERS): expected 0 to 64, got '${workersText ?? ''}'`);
  }
  const levelText = str(flags['log-level']) ?? env.UIDPUSH_LOG_LEVEL;
  if (levelText !== undefined) logLevel = levelText;
  const level = serveOnlyFields.shape.logLevel.safeParse(logLevel);
  if (!level.success) {
    problems.push(`  - log level: expected one of ${LOG_LEVELS.join(', ')}, got '${String(logLevel)}'`);
  }
  if (problems.length > 0) {
    throw new UidpushError(ProgramErrorCode.InvalidConfig, `invalid configuration:\n${problems.join('\n')}`);
  }
  try {
    const server = resolveServerOptions(merged);
    // Read here, once, so that a bad file stops `serve --workers` in the primary (exit 2)
    // instead of every worker failing and being forked again.
    const tls = tlsPaths(server);
    if (tls !== undefined) loadTlsSync(tls);
    return { server, logLevel: level.data ?? 'info', workers };
  } catch (err) {
    if (err instanceof UidpushError) throw withFlagNames(err);
    throw err;
  }
}

/**
 * The same configuration error with the flag and variable named beside each field
 * (`  - tlsCert (--tls-cert / UIDPUSH_TLS_CERT): ...`), so the fix is obvious.
 */
export function withFlagNames(err: UidpushError): UidpushError {
  const message = err.message.replace(/^ {2}- (\w+):/gm, (_m, key: string) => `  - ${key} (--${flagName(key)} / ${envName(key)}):`);
  return new UidpushError(err.code, message, { cause: err });
}

async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UidpushError(ProgramErrorCode.InvalidConfig, `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UidpushError(ProgramErrorCode.InvalidConfig, `config file ${path} is not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function str(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { mintToken, parseDuration } from '../auth/mint.js';
import { RIGHTS, type Right } from '../auth/rights.js';
import { checkUid } from '../core/names.js';
import { PushApiError, PushClient, type PushRequestOptions } from '../api-client/push-client.js';

/** A CLI failure with its exit code: 2 for usage, 1 for a failed call. */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

const COMMON = {
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const API_USAGE = `Commands that call a running server's API (--api-url, default http://127.0.0.1:1235,
or UIDPUSH_API_URL; --api-key or UIDPUSH_API_KEY; --timeout <ms>):
  push <uid> <message> [--json]       push to every connection of a uid
       [--delivery durable|ephemeral|latest:<key>] [--idempotency-key <key>]
       [--await-acks <n>] [--await-timeout <ms>]
                                      --delivery: retained in the uid's inbox or not
                                      (default: the server's defaultDelivery, durable
                                      with --inbox, else ephemeral); --idempotency-key:
                                      a retry within the server's window (300 s) pushes
                                      nothing new, so the CLI retries it; --await-timeout:
                                      answer once --await-acks devices (default 1) acked
                                      it, or after <ms> (at most 30000)
  push --uids a,b,c <message> [--json] [--delivery <class>] [--idempotency-key <key>]
  inbox <uid>                         a uid's inbox: epoch, top offset, retained range
                                      and each device's cursor
  broadcast <message> [--json]        push to every logged-in connection
  online [uid]                        presence of a uid, or every online uid
  kick <uid> [--reason <text>] [--revoke-tokens]
                                      close every connection of a uid (4501); with
                                      --revoke-tokens, its tokens issued before the kick
                                      are refused too (4502), on every node, for the
                                      server's --revoke-ttl (default 24 h), so it cannot
                                      reconnect with the token it holds
  stats                               counters of the server
  group add <group> <uid>             make a uid a member of a group
  group remove <group> <uid>          remove a uid from a group
  group leave-all <uid>               remove a uid from every group it belongs to
  group push <group> <message> [--json]  push to every connection of every member
  group show <group>                  members, online members, connections

  token <uid> [--groups a,b] [--rights send,publish] [--ttl 1h]
        [--jwt-audience <aud>] [--jwt-issuer <iss>]
                                      mint an HS256 client token with --jwt-secret or
                                      UIDPUSH_JWT_SECRET (for development and tests).
                                      It expires after --ttl (default 1h; --ttl 0: no
                                      exp, a token that never expires). aud and iss
                                      default to UIDPUSH_JWT_AUDIENCE / UIDPUSH_JWT_ISSUER,
                                      so the server's environment mints what it accepts

--json sends <message> as a JSON value (e.g. '{"type":"order"}') instead of text.
Results are printed as JSON on stdout; errors on stderr with exit code 1.`;

type Out = (line: string) => void;

/** Lifetime of a token `uidpush token` mints when --ttl is not given: one hour. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3600;

/**
 * Runs one API command (push, inbox, broadcast, online, kick, stats, group, token) and
 * prints its result.
 *
 * @throws CliError with the exit code and a message for stderr.
 */
export async function runApiCommand(command: string, args: string[], env: NodeJS.ProcessEnv, out: Out): Promise<void> {
  if (command === 'token') {
    await token(args, env, out);
    return;
  }
  const options: ParseArgsConfig['options'] = {
    ...COMMON,
    ...(command === 'push'
      ? {
          uids: { type: 'string' },
          json: { type: 'boolean' },
          delivery: { type: 'string' },
          'idempotency-key': { type: 'string' },
          'await-acks': { type: 'string' },
          'await-timeout': { type: 'string' },
        }
      : {}),
    ...(command === 'broadcast' || command === 'group' ? { json: { type: 'boolean' } } : {}),
    ...(command === 'kick' ? { reason: { type: 'string' }, 'revoke-tokens': { type: 'boolean' } } : {}),
  };
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${API_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  const flags = values as Record<string, string | boolean | undefined>;
  if (flags.help === true) {
    out(API_USAGE);
    return;
  }
  const timeoutText = str(flags.timeout);
  const timeoutMs = timeoutText === undefined ? undefined : Number(timeoutText);
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && timeoutMs > 0)) {
    throw new CliError(`--timeout: expected a positive number of ms, got '${timeoutText ?? ''}'`, 2);
  }
  const client = new PushClient({
    url: str(flags['api-url']) ?? env.UIDPUSH_API_URL ?? 'http://127.0.0.1:1235',
    apiKey: str(flags['api-key']) ?? env.UIDPUSH_API_KEY,
    timeoutMs,
  });
  const data = (message: string | undefined): unknown => {
    if (message === undefined) throw new CliError(`${command}: missing <message>\n\n${API_USAGE}`, 2);
    if (flags.json !== true) return message;
    try {
      return JSON.parse(message) as unknown;
    } catch (err) {
      throw new CliError(`--json: <message> is not JSON: ${(err as Error).message}`, 2);
    }
  };
  const expect = (count: number): void => {
    if (positionals.length !== count) {
      throw new CliError(`${command}: expected ${count} argument(s), got ${positionals.length}\n\n${API_USAGE}`, 2);
    }
  };
  const print = (value: unknown): void => {
    out(JSON.stringify(value));
  };

  try {
    switch (command) {
      case 'push': {
        const uids = str(flags.uids);
        const options = pushOptions(flags);
        if (uids !== undefined) {
          expect(1);
          const list = uids.split(',').filter((u) => u.length > 0);
          if (list.length === 0) throw new CliError('--uids: expected a comma-separated list of uids', 2);
          print(await client.pushMany(list, data(positionals[0]), options));
        } else {
          expect(2);
          print(await client.push(positionals[0] ?? '', data(positionals[1]), options));
        }
        return;
      }
      case 'inbox':
        expect(1);
        print(await client.inbox(positionals[0] ?? ''));
        return;
      case 'broadcast':
        expect(1);
        print(await client.broadcast(data(positionals[0])));
        return;
      case 'online': {
        if (positionals.length > 1) expect(1);
        const uid = positionals[0];
        if (uid !== undefined) {
          print(await client.user(uid));
          return;
        }
        const uids: string[] = [];
        for await (const u of client.allUsers()) uids.push(u);
        print({ online: uids.length, uids });
        return;
      }
      case 'kick':
        expect(1);
        print(await client.kick(positionals[0] ?? '', str(flags.reason), { revokeTokens: flags['revoke-tokens'] === true }));
        return;
      case 'stats':
        expect(0);
        print(await client.stats());
        return;
      case 'group': {
        const [sub, group = '', uid = ''] = positionals;
        if (sub === 'add' && positionals.length === 3) print(await client.addToGroup(group, uid));
        else if (sub === 'remove' && positionals.length === 3) print(await client.removeFromGroup(group, uid));
        else if (sub === 'push' && positionals.length === 3) print(await client.pushToGroup(group, data(positionals[2])));
        else if (sub === 'show' && positionals.length === 2) print(await client.group(group));
        else if (sub === 'leave-all' && positionals.length === 2) print(await client.removeFromAllGroups(positionals[1] ?? ''));
        else
          throw new CliError(
            `group: expected add|remove <group> <uid>, push <group> <message>, show <group> or leave-all <uid>\n\n${API_USAGE}`,
            2,
          );
        return;
      }
      default:
        throw new CliError(`unknown command '${command}'`, 2);
    }
  } catch (err) {
    if (err instanceof PushApiError) {
      const status = err.status === undefined ? '' : ` (HTTP ${err.status})`;
      throw new CliError(`${err.code}: ${err.message}${status}`, 1);
    }
    throw err;
  }
}

async function token(args: string[], env: NodeJS.ProcessEnv, out: Out): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        groups: { type: 'string' },
        rights: { type: 'string' },
        ttl: { type: 'string' },
        'jwt-secret': { type: 'string' },
        'jwt-audience': { type: 'string' },
        'jwt-issuer': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${API_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    out(API_USAGE);
    return;
  }
  const [uid] = positionals;
  if (uid === undefined || positionals.length !== 1) throw new CliError('token: expected one <uid>', 2);
  // A sub the server would refuse is better refused here. The server's maxUidLength may be
  // lower than the largest allowed; 1024 catches only what no server takes.
  const refusal = checkUid(uid, 1024);
  if (refusal !== undefined) throw new CliError(`token: ${refusal}`, 2);
  const secret = values['jwt-secret'] ?? env.UIDPUSH_JWT_SECRET;
  if (secret === undefined || secret.length < 32) {
    throw new CliError('token: needs the HS256 secret (--jwt-secret or UIDPUSH_JWT_SECRET, 32+ characters)', 2);
  }
  const list = (text: string | undefined): string[] | undefined =>
    text
      ?.split(',')
      .map((v) => v.trim())
      .filter((v) => v.length > 0);
  const rights = list(values.rights);
  const unknown = rights?.filter((r) => !(RIGHTS as readonly string[]).includes(r)) ?? [];
  if (unknown.length > 0) throw new CliError(`--rights: unknown ${unknown.join(', ')}; known: ${RIGHTS.join(', ')}`, 2);
  // A token that never expires must be asked for (--ttl 0): a forgotten development token
  // should not stay valid for good.
  const ttlText = values.ttl ?? String(DEFAULT_TOKEN_TTL_SECONDS);
  const noExpiry = ttlText.trim() === '0';
  const ttlSeconds = noExpiry ? undefined : parseDuration(ttlText);
  if (!noExpiry && ttlSeconds === undefined) {
    throw new CliError(`--ttl: expected e.g. 90, 45s, 30m, 1h or 7d (0: never expires), got '${ttlText}'`, 2);
  }
  const nonEmpty = (text: string | undefined): string | undefined => (text === undefined || text === '' ? undefined : text);
  out(
    await mintToken(secret, {
      uid,
      groups: list(values.groups),
      rights: rights as Right[] | undefined,
      ttlSeconds,
      audience: nonEmpty(values['jwt-audience'] ?? env.UIDPUSH_JWT_AUDIENCE),
      issuer: nonEmpty(values['jwt-issuer'] ?? env.UIDPUSH_JWT_ISSUER),
    }),
  );
}

/**
 * The push options of `uidpush push`'s flags. Only their form is checked here; the server
 * checks the rest (the delivery class, the key's length, the await bounds, await with
 * --uids), so the CLI and the API refuse alike and say it in the same words.
 * @throws CliError 2 for a flag that is not a positive integer, or --await-acks alone.
 */
function pushOptions(flags: Record<string, string | boolean | undefined>): PushRequestOptions {
  const options: PushRequestOptions = {};
  const delivery = str(flags.delivery);
  if (delivery !== undefined) options.delivery = delivery;
  const key = str(flags['idempotency-key']);
  if (key !== undefined) options.idempotencyKey = key;
  const acks = positiveInt(flags['await-acks'], '--await-acks', 'devices');
  const timeoutMs = positiveInt(flags['await-timeout'], '--await-timeout', 'ms');
  if (acks !== undefined && timeoutMs === undefined) throw new CliError('--await-acks: needs --await-timeout <ms>', 2);
  if (timeoutMs !== undefined) options.await = acks === undefined ? { timeoutMs } : { acked: acks, timeoutMs };
  return options;
}

function positiveInt(value: string | boolean | undefined, flag: string, unit: string): number | undefined {
  const text = str(value);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new CliError(`${flag}: expected a positive number of ${unit}, got '${text}'`, 2);
  }
  return n;
}

function str(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The commands {@link runApiCommand} takes. */
export const API_COMMANDS = new Set(['push', 'inbox', 'broadcast', 'online', 'kick', 'stats', 'group', 'token']);

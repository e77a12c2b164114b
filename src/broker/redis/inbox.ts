import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import {
  newEpoch,
  type AckOutcome,
  type AckRefusal,
  type Appended,
  type AppendRequest,
  type InboxDevice,
  type InboxEntry,
  type InboxInfo,
  type InboxOpened,
  type InboxPage,
  type Retention,
} from '../../core/inbox.js';
import { UnavailableError } from '../../core/errors.js';
import type { Uid } from '../../core/types.js';
import type { InboxStore, RetainedEnvelope } from '../broker.js';
import type { RedisLike } from './client.js';
import type { RedisKeys } from './keys.js';

/**
 * Lua shared by the scripts. Times are Redis's clock (TIME), so every node ages entries
 * alike whatever its own clock. Offsets are formatted with `%d`: Lua's default number
 * format (`%.14g`) would print a large offset in exponent form.
 */
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x) return string.format('%d', x) end
local function entry_time(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then return tonumber(fields[i + 1]) end
  end
  return 0
end
-- The uid's inbox, made if it has none (a new epoch, top 0, lowest 1): data left by an
-- epoch whose meta expired belongs to no inbox any more, so it goes.
local function ensure_meta(stream, meta, devices, latest, candidate)
  local m = redis.call('HMGET', meta, 'e', 's', 'lo')
  if m[1] then return m[1], tonumber(m[2]) or 0, tonumber(m[3]) or 1 end
  redis.call('DEL', stream, devices, latest)
  redis.call('HSET', meta, 'e', candidate, 's', 0, 'lo', 1)
  return candidate, 0, 1
end
-- Trims by count (the newest size offsets) and by age (entries older than ttl ms), and
-- returns the new lowest offset. The age boundary is found by bisection over offsets
-- (entries are in time order): O(log size) probes however many entries expired.
local function trim(stream, lo, top, size, ttl, now)
  local keep = top - size + 1
  if keep > lo then
    redis.call('XTRIM', stream, 'MINID', int(keep) .. '-0')
    lo = keep
  end
  local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
  if head == nil or entry_time(head) + ttl > now then return lo end
  local low = tonumber(string.match(head[1], '^(%d+)')) + 1
  local high = top + 1
  while low < high do
    local mid = math.floor((low + high) / 2)
    local e = redis.call('XRANGE', stream, int(mid) .. '-0', '+', 'COUNT', 1)[1]
    if e == nil or entry_time(e) + ttl > now then high = mid else low = mid + 1 end
  end
  redis.call('XTRIM', stream, 'MINID', int(low) .. '-0')
  if low > lo then lo = low end
  return lo
end
-- The lowest offset retained now, trimming what count and age drop: top + 1 when the
-- stream expired whole (its TTL is the data's).
local function settle(stream, meta, lo, top, size, ttl, now)
  local lowest
  if redis.call('EXISTS', stream) == 0 then lowest = top + 1 else lowest = trim(stream, lo, top, size, ttl, now) end
  if lowest ~= lo then redis.call('HSET', meta, 'lo', int(lowest)) end
  return lowest
end
`;

/**
 * Appends one entry and publishes it, atomically: offsets reach subscribers in order.
 * KEYS: stream, meta, devices, latest[, idempotency]. ARGV: data; `=<from>` or '' (null);
 * `=<latest key>` or ''; epoch candidate; size; ttl ms; meta ttl ms; idempotency ms;
 * channel ('' publishes nothing); envelope before; envelope after; `load` to do nothing
 * (what loads the script into a Redis that lost it, see RedisInbox).
 * Returns {duplicate 0|1, offset, epoch}.
 */
const APPEND = compact(`${PRELUDE}
if ARGV[12] == 'load' then return 0 end
local stream, meta, devices, latest, idem = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if idem then
  local seen = redis.call('GET', idem)
  if seen then
    local o, e = string.match(seen, '^(%d+):(.+)$')
    if o then return {1, o, e} end
  end
end
local size, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local epoch, top, lo = ensure_meta(stream, meta, devices, latest, ARGV[4])
top = redis.call('HINCRBY', meta, 's', 1)
-- Expired whole (its TTL is the data's): nothing below the new entry is retained.
if redis.call('EXISTS', stream) == 0 then lo = top end
local fields = {'d', ARGV[1], 't', int(now)}
if ARGV[2] ~= '' then
  fields[#fields + 1] = 'f'
  fields[#fields + 1] = string.sub(ARGV[2], 2)
end
if ARGV[3] ~= '' then
  local key = string.sub(ARGV[3], 2)
  local prev = redis.call('HGET', latest, key)
  if prev then redis.call('XDEL', stream, prev .. '-0') end
  redis.call('HSET', latest, key, int(top))
  fields[#fields + 1] = 'k'
  fields[#fields + 1] = key
end
redis.call('XADD', stream, int(top) .. '-0', unpack(fields))
lo = trim(stream, lo, top, size, ttl, now)
redis.call('HSET', meta, 'lo', int(lo))
-- Keys whose newest entry was trimmed linger in the latest hash: past twice the size,
-- sweep them (amortised: the sweep leaves at most size).
if ARGV[3] ~= '' and redis.call('HLEN', latest) > 2 * size then
  local all = redis.call('HGETALL', latest)
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < lo then redis.call('HDEL', latest, all[i]) end
  end
end
redis.call('PEXPIRE', stream, ARGV[6])
redis.call('PEXPIRE', latest, ARGV[6])
redis.call('PEXPIRE', meta, ARGV[7])
redis.call('PEXPIRE', devices, ARGV[7])
if idem then redis.call('SET', idem, int(top) .. ':' .. epoch, 'PX', ARGV[8]) end
if ARGV[9] ~= '' then
  redis.call('SPUBLISH', ARGV[9], ARGV[10] .. int(top) .. ',"ep":"' .. epoch .. '"' .. ARGV[11])
end
return {0, int(top), epoch}`);

/**
 * A device connects. KEYS: stream, meta, devices, latest. ARGV: device; epoch candidate;
 * size; ttl ms; meta ttl ms; max devices. Returns {epoch, top, lowest, cursor or -1 for a
 * device the inbox did not know (registered now at the top)}.
 */
const OPEN = compact(`${PRELUDE}
local stream, meta, devices, latest = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local device, max = ARGV[1], tonumber(ARGV[6])
local now = now_ms()
local epoch, top, lo = ensure_meta(stream, meta, devices, latest, ARGV[2])
local lowest = settle(stream, meta, lo, top, tonumber(ARGV[3]), tonumber(ARGV[4]), now)
redis.call('PEXPIRE', meta, ARGV[5])
local known = redis.call('HGET', devices, device)
local cursor = -1
if known then
  cursor = tonumber(string.match(known, '^(%d+):'))
  redis.call('HSET', devices, device, int(cursor) .. ':' .. int(now))
else
  -- At the cap, forget the device seen longest ago (a loop: the cap may have been lowered).
  while redis.call('HLEN', devices) >= max do
    local all = redis.call('HGETALL', devices)
    local oldest, oldestSeen = nil, nil
    for i = 1, #all, 2 do
      local seen = tonumber(string.match(all[i + 1], ':(%d+)$')) or 0
      if oldestSeen == nil or seen < oldestSeen then oldest, oldestSeen = all[i], seen end
    end
    redis.call('HDEL', devices, oldest)
  end
  redis.call('HSET', devices, device, int(top) .. ':' .. int(now))
end
redis.call('PEXPIRE', devices, ARGV[5])
return {epoch, int(top), int(lowest), int(cursor)}`);

/**
 * Entries after an offset. KEYS: stream, meta, devices, latest. ARGV: after; limit; epoch
 * candidate; size; ttl ms. Returns {epoch, top, lowest, entries as XRANGE gives them}.
 */
const READ = compact(`${PRELUDE}
local stream, meta = KEYS[1], KEYS[2]
local after = tonumber(ARGV[1])
local now = now_ms()
local epoch, top, lo = ensure_meta(stream, meta, KEYS[3], KEYS[4], ARGV[3])
local lowest = settle(stream, meta, lo, top, tonumber(ARGV[4]), tonumber(ARGV[5]), now)
local entries = {}
if after < top then entries = redis.call('XRANGE', stream, int(after + 1) .. '-0', '+', 'COUNT', ARGV[2]) end
return {epoch, int(top), int(lowest), entries}`);

/**
 * A device acks: core's checkAck, atomically with the write. KEYS: meta, devices. ARGV:
 * device; upTo; meta ttl ms. Returns {'ok' or the refusal, cursor, top}.
 */
const ACK = compact(`
local meta, devices = KEYS[1], KEYS[2]
local upTo = tonumber(ARGV[2])
local top = tonumber(redis.call('HGET', meta, 's')) or 0
local known = redis.call('HGET', devices, ARGV[1])
if not known then return {'unknown_device', 0, string.format('%d', top)} end
local cursor = tonumber(string.match(known, '^(%d+):'))
if upTo > top then return {'beyond_top', string.format('%d', cursor), string.format('%d', top)} end
if upTo < cursor then return {'backwards', string.format('%d', cursor), string.format('%d', top)} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', devices, ARGV[1], ARGV[2] .. ':' .. string.format('%d', now))
redis.call('PEXPIRE', devices, ARGV[3])
redis.call('PEXPIRE', meta, ARGV[3])
return {'ok', ARGV[2], string.format('%d', top)}`);

/**
 * What an inbox holds, without making one. KEYS: stream, meta, devices. ARGV: size; ttl
 * ms. Returns {} when the uid has no inbox, else {epoch, top, lowest, count, devices as
 * HGETALL gives them}.
 */
const INFO = compact(`${PRELUDE}
local stream, meta, devices = KEYS[1], KEYS[2], KEYS[3]
local m = redis.call('HMGET', meta, 'e', 's', 'lo')
if not m[1] then return {} end
local top = tonumber(m[2]) or 0
local lowest = settle(stream, meta, tonumber(m[3]) or 1, top, tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())
return {m[1], int(top), int(lowest), redis.call('XLEN', stream), redis.call('HGETALL', devices)}`);

/**
 * A script as sent: without its comment lines and indentation. EVAL sends the whole text
 * with every call (Redis hashes it to find the compiled script), so less text is less work.
 * The scripts hold no `--` inside a string.
 */
function compact(script: string): string {
  return script
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('--'))
    .join('\n');
}

/** What loads scripts: a client or a Sentinel's master (`scriptLoad`), or a Cluster (each master's client). */
interface ScriptLoader {
  scriptLoad?(script: string): Promise<unknown>;
  masters?: unknown[];
  nodeClient?(master: unknown): Promise<{ scriptLoad(script: string): Promise<unknown> }>;
}

/** A uid's appends from this node: how many are in flight, how many were sent, and the wait after a NOSCRIPT. */
interface AppendState {
  inFlight: number;
  sent: number;
  blocked: Promise<void> | undefined;
  unblock: (() => void) | undefined;
}

/** Makes later appends of the uid wait (see RedisInbox's note on NOSCRIPT); once per episode. */
function block(state: AppendState): void {
  if (state.unblock !== undefined) return;
  state.blocked = new Promise<void>((resolve) => {
    state.unblock = resolve;
  });
}

const SHAS = new Map<string, string>();

/** The SHA1 Redis knows a script by. */
function shaOf(script: string): string {
  let sha = SHAS.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    SHAS.set(script, sha);
  }
  return sha;
}

const APPEND_SHA = shaOf(APPEND);

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/** A millisecond option as Redis takes it: a whole number, at least 1. */
function ms(value: number): string {
  return String(Math.max(1, Math.ceil(value)));
}

function fail(what: string, reply: unknown): never {
  throw new Error(`redis inbox: unexpected ${what} reply ${inspect(reply, { depth: 3 }).slice(0, 200)}`);
}

function list(reply: unknown, what: string): unknown[] {
  if (!Array.isArray(reply)) fail(what, reply);
  return reply as unknown[];
}

function text(value: unknown, what: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return fail(what, value);
}

function integer(value: unknown, what: string): number {
  const n = typeof value === 'number' ? value : Number(text(value, what));
  if (!Number.isSafeInteger(n)) fail(what, value);
  return n;
}

/** A stream entry `[id, [field, value, ...]]` as an {@link InboxEntry}. */
function entryOf(raw: unknown): InboxEntry {
  const [id, fields] = list(raw, 'entry');
  const offset = integer(text(id, 'entry id').split('-')[0], 'entry id');
  const pairs = list(fields, 'entry fields');
  let data: string | undefined;
  let from: Uid | null = null;
  let key: string | undefined;
  let at = 0;
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const value = text(pairs[i + 1], 'entry field');
    switch (pairs[i]) {
      case 'd':
        data = value;
        break;
      case 'f':
        from = value;
        break;
      case 'k':
        key = value;
        break;
      case 't':
        at = Number(value);
        break;
    }
  }
  if (data === undefined) fail('entry', raw);
  return key === undefined ? { offset, data, from, at } : { offset, data, from, key, at };
}

/**
 * The per-uid inboxes in Redis (keys: {@link RedisKeys}`.inbox`). Every operation is one
 * Lua script on the uid's keys, which share its channel's hash tag: one slot, so a Redis
 * Cluster runs it on one master, and an append publishes its envelope (SPUBLISH) in the
 * same atomic step, so every node receives a uid's retained pushes in offset order.
 *
 * Scripts go by EVALSHA: EVAL would send and hash some 3 KB of text per push (Redis's CPU
 * at 18,000 durable pushes/s; bench/README.md, "Inbox"). A Redis that lost its script
 * cache (started, restarted, failed over) answers NOSCRIPT; the read-like scripts are then
 * sent by EVAL. An append is retried only when that cannot reorder the uid's appends: the
 * script is loaded (a no-op EVAL of it, on the uid's Redis), and the append sent again by
 * EVALSHA while later appends of this node to the uid wait for it; but if another append to
 * the uid was already in flight behind it, that one may have been retained first (another
 * node may have loaded the script between the two), so this one is refused (`unavailable`,
 * nothing retained: safe to retry).
 * Every call rejects when Redis fails.
 */
export class RedisInbox implements InboxStore {
  readonly #redis: RedisLike;
  readonly #key: RedisKeys;

  /** Appends of this node in flight per uid, and what later ones wait for after a NOSCRIPT. */
  readonly #appending = new Map<Uid, AppendState>();

  constructor(redis: RedisLike, key: RedisKeys) {
    this.#redis = redis;
    this.#key = key;
  }

  /**
   * Loads every script into Redis (each master of a Cluster), so the first appends after a
   * start or an outage go by EVALSHA at once; what this misses (a master added later) the
   * NOSCRIPT path loads.
   */
  async load(): Promise<void> {
    const scripts = [APPEND, OPEN, READ, ACK, INFO];
    const redis = this.#redis as unknown as ScriptLoader;
    if (redis.masters !== undefined && redis.nodeClient !== undefined) {
      const nodeClient = redis.nodeClient.bind(redis);
      await Promise.all(
        redis.masters.map(async (master) => {
          const client = await nodeClient(master);
          await Promise.all(scripts.map((script) => client.scriptLoad(script)));
        }),
      );
      return;
    }
    if (redis.scriptLoad !== undefined) {
      const scriptLoad = redis.scriptLoad.bind(redis);
      await Promise.all(scripts.map((script) => scriptLoad(script)));
    }
  }

  /** A read-like script: by its SHA1, by its text when Redis lost it (their order does not matter). */
  async #run(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown> {
    try {
      return await this.#redis.evalSha(shaOf(script), options);
    } catch (err) {
      if (!isNoScript(err)) throw err;
      return this.#redis.eval(script, options);
    }
  }

  /** The append script by its SHA1, in call order per uid (see the class's note on NOSCRIPT). */
  async #append(uid: Uid, keys: string[], args: string[]): Promise<unknown> {
    let state = this.#appending.get(uid);
    if (state === undefined) {
      state = { inFlight: 0, sent: 0, blocked: undefined, unblock: undefined };
      this.#appending.set(uid, state);
    }
    while (state.blocked !== undefined) await state.blocked;
    state.inFlight++;
    const mine = ++state.sent;
    try {
      return await this.#redis.evalSha(APPEND_SHA, { keys, arguments: args });
    } catch (err) {
      if (!isNoScript(err)) throw err;
      // New appends to the uid wait until every one in flight now has settled.
      block(state);
      // One sent after this may have been retained already: this one is refused, not retried.
      const behind = state.sent > mine;
      await this.#redis.eval(APPEND, { keys, arguments: [...args, 'load'] });
      if (behind)
        throw new UnavailableError('the inbox script was not loaded on this Redis (restarted or failed over); loaded now, retry', {
          cause: err,
        });
      return await this.#redis.evalSha(APPEND_SHA, { keys, arguments: args });
    } finally {
      if (--state.inFlight === 0) {
        this.#appending.delete(uid);
        state.blocked = undefined;
        state.unblock?.();
        state.unblock = undefined;
      }
    }
  }

  async append(uid: Uid, entry: AppendRequest, envelope: RetainedEnvelope | undefined, retention: Retention): Promise<Appended> {
    const k = this.#key.inbox(uid);
    const keys = [k.stream, k.meta, k.devices, k.latest];
    if (entry.idempotencyKey !== undefined) keys.push(k.idempotency(entry.idempotencyKey));
    const reply = list(
      await this.#append(uid, keys, [
        entry.data,
        entry.from === null ? '' : `=${entry.from}`,
        entry.key === undefined ? '' : `=${entry.key}`,
        newEpoch(),
        String(retention.size),
        ms(retention.ttlMs),
        ms(retention.metaTtlMs),
        ms(retention.idempotencyMs),
        envelope === undefined ? '' : this.#key.channel(envelope.channel),
        envelope?.before ?? '',
        envelope?.after ?? '',
      ]),
      'append',
    );
    return { duplicate: integer(reply[0], 'append') === 1, offset: integer(reply[1], 'append'), epoch: text(reply[2], 'append') };
  }

  async open(uid: Uid, device: string, retention: Retention): Promise<InboxOpened> {
    const k = this.#key.inbox(uid);
    const reply = list(
      await this.#run(OPEN, {
        keys: [k.stream, k.meta, k.devices, k.latest],
        arguments: [device, newEpoch(), String(retention.size), ms(retention.ttlMs), ms(retention.metaTtlMs), String(retention.maxDevices)],
      }),
      'open',
    );
    const cursor = integer(reply[3], 'open');
    return {
      epoch: text(reply[0], 'open'),
      top: integer(reply[1], 'open'),
      lowest: integer(reply[2], 'open'),
      cursor: cursor < 0 ? null : cursor,
    };
  }

  async read(uid: Uid, after: number, limit: number, retention: Retention): Promise<InboxPage> {
    const k = this.#key.inbox(uid);
    const reply = list(
      await this.#run(READ, {
        keys: [k.stream, k.meta, k.devices, k.latest],
        arguments: [
          String(Math.max(0, Math.floor(after))),
          String(Math.max(1, Math.floor(limit))),
          newEpoch(),
          String(retention.size),
          ms(retention.ttlMs),
        ],
      }),
      'read',
    );
    return {
      epoch: text(reply[0], 'read'),
      top: integer(reply[1], 'read'),
      lowest: integer(reply[2], 'read'),
      entries: list(reply[3], 'read').map(entryOf),
    };
  }

  async ack(uid: Uid, device: string, upTo: number, retention: Retention): Promise<AckOutcome> {
    const k = this.#key.inbox(uid);
    const reply = list(
      await this.#run(ACK, {
        keys: [k.meta, k.devices],
        arguments: [device, String(Math.floor(upTo)), ms(retention.metaTtlMs)],
      }),
      'ack',
    );
    const outcome = text(reply[0], 'ack');
    const cursor = integer(reply[1], 'ack');
    if (outcome === 'ok') return { ok: true, cursor };
    return { ok: false, reason: outcome as AckRefusal, cursor, top: integer(reply[2], 'ack') };
  }

  async info(uid: Uid, retention: Retention): Promise<InboxInfo> {
    const k = this.#key.inbox(uid);
    const reply = list(
      await this.#run(INFO, { keys: [k.stream, k.meta, k.devices], arguments: [String(retention.size), ms(retention.ttlMs)] }),
      'info',
    );
    if (reply.length === 0) return { uid, epoch: null, top: 0, retained: { from: 1, to: 0, count: 0 }, devices: [] };
    const top = integer(reply[1], 'info');
    const pairs = list(reply[4], 'info devices');
    const devices: InboxDevice[] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const [cursor = '0', lastSeen = '0'] = text(pairs[i + 1], 'device').split(':');
      devices.push({ device: text(pairs[i], 'device'), cursor: Number(cursor), lastSeen: Number(lastSeen) });
    }
    devices.sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
    return {
      uid,
      epoch: text(reply[0], 'info'),
      top,
      retained: { from: integer(reply[2], 'info'), to: top, count: integer(reply[3], 'info') },
      devices,
    };
  }
}

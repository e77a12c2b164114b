import type { ErrorCode } from '../core/errors.js';
import { MAX_AWAIT_MS, type InboxInfo } from '../core/inbox.js';
import type { BroadcastResult, GroupInfo, PushResult, ServiceStats, UidPage } from '../core/service.js';
import type { Group, Uid } from '../core/types.js';

/** Options of {@link PushClient}. */
export interface PushClientOptions {
  /**
   * Base URL of the server API.
   * @defaultValue 'http://127.0.0.1:1235'
   */
  url?: string | undefined;
  /** The API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string | undefined;
  /**
   * Time limit of one attempt, in ms. A push with `await` has the await's `timeoutMs`
   * added, since the server holds its answer that long.
   * @defaultValue 5000
   */
  timeoutMs?: number | undefined;
  /**
   * Extra attempts for idempotent calls (reads, kick, group membership, and a push with an
   * `idempotencyKey`) after a network error, a timeout or a 5xx answer. Other pushes are
   * never retried: a push that timed out may have been delivered.
   * @defaultValue 2
   */
  retries?: number | undefined;
  /**
   * First retry delay cap, in ms; it doubles per attempt up to `retryMaxMs`, and each
   * delay is drawn uniformly below the cap (full jitter).
   * @defaultValue 100
   */
  retryBaseMs?: number | undefined;
  /** @defaultValue 2000 */
  retryMaxMs?: number | undefined;
  /** The fetch to use; Node's global fetch (keep-alive) by default. */
  fetch?: typeof fetch | undefined;
}

/**
 * Why a call failed: one of the API's error codes (docs/errors.md), or `network` (no
 * answer), `timeout` (no answer in time) or `bad_response` (an answer that is not the
 * API's JSON).
 */
export type PushClientErrorCode = ErrorCode | 'network' | 'timeout' | 'bad_response';

/** The error every {@link PushClient} method rejects with. */
export class PushApiError extends Error {
  /** Stable code; see {@link PushClientErrorCode}. */
  readonly code: PushClientErrorCode;
  /** The HTTP status, when the server answered. */
  readonly status: number | undefined;

  constructor(code: PushClientErrorCode, message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PushApiError';
    this.code = code;
    this.status = status;
  }
}

/**
 * How to push to uids (docs/http-api.md, `POST /v1/push`); every field is optional, and
 * the server applies its defaults to the absent ones.
 */
export interface PushRequestOptions {
  /**
   * `durable` (retained in the uid's inbox, replayed to devices that missed it),
   * `ephemeral` (to the connections open now only) or `latest:<key>` (retained, only the
   * newest of each key). Absent: the server's `defaultDelivery`.
   */
  delivery?: string | undefined;
  /**
   * A retry with the same key within the server's idempotency window (default 300 s)
   * retains nothing new and answers the first push's position (`duplicate: true`). A push
   * with a key is therefore retried like the idempotent calls.
   */
  idempotencyKey?: string | undefined;
  /**
   * `push` only (one uid): answer once `acked` devices (default 1, at most 64) acked the
   * push, or after `timeoutMs` (at most 30000) with `undelivered: true`. The call's time
   * limit grows by `timeoutMs`, so the wait itself never times the call out.
   */
  await?: { acked?: number | undefined; timeoutMs: number } | undefined;
}

/** Presence of one uid. */
export interface UserPresence {
  uid: Uid;
  online: boolean;
  connections: number;
}

/**
 * A typed client of the uidpush server API, for backends that push without holding a
 * WebSocket.
 *
 * @example
 * import { PushClient } from 'uidpush/api-client';
 *
 * const client = new PushClient({ url: 'http://127.0.0.1:1235', apiKey: process.env.KEY });
 * const { online, connections } = await client.push('alice', { type: 'order', id: 7 });
 */
export class PushClient {
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryBaseMs: number;
  readonly #retryMaxMs: number;
  readonly #fetch: typeof fetch;

  constructor(options: PushClientOptions = {}) {
    this.#url = (options.url ?? 'http://127.0.0.1:1235').replace(/\/+$/, '');
    this.#headers = options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` };
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#retries = options.retries ?? 2;
    this.#retryBaseMs = options.retryBaseMs ?? 100;
    this.#retryMaxMs = options.retryMaxMs ?? 2000;
    this.#fetch = options.fetch ?? fetch;
  }

  /**
   * Pushes `data` to every connection of `uid`. A string is sent as the text frame itself;
   * any other JSON value as its JSON text. A retained push answers its `offset` and `epoch`
   * in the uid's inbox; with `await`, the devices that `acked` it (or `undelivered`).
   */
  push(uid: Uid, data: unknown, options: PushRequestOptions = {}): Promise<PushResult> {
    return this.#push({ uid, data }, options);
  }

  /**
   * Pushes `data` to every connection of each uid (the server encodes it once). A retained
   * push answers each uid's place in `positions`. `await` is refused (400): acks are
   * counted for one uid.
   */
  pushMany(uids: readonly Uid[], data: unknown, options: PushRequestOptions = {}): Promise<PushResult> {
    return this.#push({ uids, data }, options);
  }

  /** A uid's inbox: its epoch (null: none), top offset, retained range and device cursors. */
  inbox(uid: Uid): Promise<InboxInfo> {
    return this.#call('GET', `/v1/users/${encodeURIComponent(uid)}/inbox`, undefined, true);
  }

  /** Pushes `data` to every logged-in connection. */
  broadcast(data: unknown): Promise<BroadcastResult> {
    return this.#call('POST', '/v1/broadcast', { data }, false);
  }

  /** Whether `uid` is online, and with how many connections. */
  user(uid: Uid): Promise<UserPresence> {
    return this.#call('GET', `/v1/users/${encodeURIComponent(uid)}`, undefined, true);
  }

  /** One page of online uids; pass `nextCursor` back for the next. */
  users(options: { cursor?: string | null | undefined; limit?: number | undefined } = {}): Promise<UidPage> {
    const query = new URLSearchParams();
    if (options.cursor !== undefined && options.cursor !== null) query.set('cursor', options.cursor);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    const qs = query.toString();
    return this.#call('GET', `/v1/users${qs === '' ? '' : `?${qs}`}`, undefined, true);
  }

  /** Every online uid, fetched a page at a time. */
  async *allUsers(pageSize = 1000): AsyncGenerator<Uid> {
    let cursor: string | null = null;
    do {
      const page: UidPage = await this.users({ cursor, limit: pageSize });
      yield* page.uids;
      cursor = page.nextCursor;
    } while (cursor !== null);
  }

  /** Counters and gauges of the server. */
  stats(): Promise<ServiceStats> {
    return this.#call('GET', '/v1/stats', undefined, true);
  }

  /**
   * Closes every connection of `uid` (close code 4501) with an optional reason. With
   * `revokeTokens`, the uid's tokens issued before the kick are refused too (for the
   * server's `revokeTtl`); `revoked` then holds the cut-off, in ms since the epoch.
   */
  kick(
    uid: Uid,
    reason?: string,
    options: { revokeTokens?: boolean | undefined } = {},
  ): Promise<{ uid: Uid; kicked: number; revoked?: { before: number; until: number } }> {
    const body: { reason?: string; revokeTokens?: boolean } = {};
    if (reason !== undefined) body.reason = reason;
    if (options.revokeTokens === true) body.revokeTokens = true;
    return this.#call('POST', `/v1/users/${encodeURIComponent(uid)}/kick`, body, true);
  }

  /** Adds `uid` to `group` (it need not be online); `added` is false if it already was. */
  addToGroup(group: Group, uid: Uid): Promise<{ group: Group; uid: Uid; added: boolean }> {
    return this.#call('PUT', `/v1/groups/${encodeURIComponent(group)}/members/${encodeURIComponent(uid)}`, undefined, true);
  }

  /** Removes `uid` from `group`; `removed` is false if it was not a member. */
  removeFromGroup(group: Group, uid: Uid): Promise<{ group: Group; uid: Uid; removed: boolean }> {
    return this.#call('DELETE', `/v1/groups/${encodeURIComponent(group)}/members/${encodeURIComponent(uid)}`, undefined, true);
  }

  /**
   * Removes `uid` from every group it belongs to, on every node (a deleted account);
   * `left` counts them. Retried like a read: a second removal changes nothing.
   */
  removeFromAllGroups(uid: Uid): Promise<{ uid: Uid; left: number }> {
    return this.#call('DELETE', `/v1/users/${encodeURIComponent(uid)}/groups`, undefined, true);
  }

  /** Pushes `data` to every connection of every member of `group`. */
  pushToGroup(group: Group, data: unknown): Promise<PushResult> {
    return this.#call('POST', `/v1/groups/${encodeURIComponent(group)}/push`, { data }, false);
  }

  /** Members of `group`, how many are online, and their connections. */
  group(group: Group): Promise<GroupInfo> {
    return this.#call('GET', `/v1/groups/${encodeURIComponent(group)}`, undefined, true);
  }

  /** Whether the server answers /readyz with ready. */
  async ready(): Promise<boolean> {
    try {
      await this.#call('GET', '/readyz', undefined, false);
      return true;
    } catch (err) {
      if (err instanceof PushApiError && err.status === 503) return false;
      throw err;
    }
  }

  #push(target: { uid: Uid; data: unknown } | { uids: readonly Uid[]; data: unknown }, options: PushRequestOptions): Promise<PushResult> {
    // Only the fields given: an absent one is the server's default, and `undefined` would
    // vanish from the JSON anyway.
    const body: Record<string, unknown> = { ...target };
    if (options.delivery !== undefined) body.delivery = options.delivery;
    if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
    const wait = options.await;
    if (wait !== undefined) {
      body.await = wait.acked === undefined ? { timeoutMs: wait.timeoutMs } : { acked: wait.acked, timeoutMs: wait.timeoutMs };
    }
    // The key makes a retry answer the first push's position instead of pushing again.
    const idempotent = options.idempotencyKey !== undefined;
    // The server holds the answer for up to the await's timeout; the usual limit is for the
    // rest. Bounded by the server's maximum (a longer wait is a quick 400), which also keeps
    // the timer in range.
    const waitMs = wait === undefined || !(wait.timeoutMs > 0) ? 0 : Math.min(wait.timeoutMs, MAX_AWAIT_MS);
    const timeoutMs = this.#timeoutMs + waitMs;
    return this.#call('POST', '/v1/push', body, idempotent, timeoutMs);
  }

  async #call<T>(method: string, path: string, body: unknown, idempotent: boolean, timeoutMs = this.#timeoutMs): Promise<T> {
    const attempts = idempotent ? this.#retries + 1 : 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#once<T>(method, path, body, timeoutMs);
      } catch (err) {
        const retryable =
          err instanceof PushApiError &&
          (err.code === 'network' || err.code === 'timeout' || (err.status !== undefined && err.status >= 500));
        if (!retryable || attempt >= attempts) throw err;
        const cap = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (attempt - 1));
        await new Promise((resolve) => setTimeout(resolve, Math.random() * cap));
      }
    }
  }

  async #once<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const headers: Record<string, string> = { ...this.#headers };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await this.#fetch(`${this.#url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
      throw timedOut
        ? new PushApiError('timeout', `${method} ${path}: no answer in ${timeoutMs} ms`, undefined, { cause: err })
        : new PushApiError('network', `${method} ${path}: cannot reach ${this.#url}${cause}`, undefined, { cause: err });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new PushApiError('bad_response', `${method} ${path}: answer is not JSON (status ${res.status})`, res.status);
    }
    if (res.ok) return parsed as T;
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (typeof error?.code === 'string' && typeof error.message === 'string') {
      throw new PushApiError(error.code as ErrorCode, error.message, res.status);
    }
    if (res.status === 503) throw new PushApiError('internal', `${method} ${path}: not ready`, 503);
    throw new PushApiError('bad_response', `${method} ${path}: status ${res.status}`, res.status);
  }
}

import { mayReconnect, CloseCode } from '../core/close-codes.js';
import type { MessageFrame, Scope, ServerFrame, WelcomeFrame } from '../core/frames.js';
import type { JsonValue } from '../core/types.js';
import { backoffDelay, isDuplicate, jwtExpiry, refreshDelay, type Position } from './policy.js';

/** The WebSocket subprotocol the SDK speaks (docs/protocol.md). */
export const PROTOCOL = 'uidpush.v1';

/** Where the SDK keeps a device's id and inbox position. `localStorage` fits as is. */
export interface ClientStorage {
  get(key: string): string | null;
  set(key: string, value: string): void;
}

/**
 * A WebSocket constructor: the platform's (browsers, `globalThis.WebSocket`) or `ws`'s in
 * Node. Typed loosely on purpose: the DOM and `ws` declare their event types differently,
 * and the SDK uses only what both share (`on*` handlers, `send`, `close`, `readyState`).
 */
export type WebSocketConstructor = new (url: string, protocols: string) => unknown;

/** Options of {@link Client}. */
export interface ClientOptions {
  /** The uid to log in as, on a server with auth off. */
  uid?: string;
  /** A fixed token (auth on). Prefer `getToken` for tokens that expire. */
  token?: string;
  /** Called at each connect and before the token's `exp`, for a fresh token (auth on). */
  getToken?: () => Promise<string>;
  /** This device's id in the inbox; when absent, the one the server makes up is kept in storage. */
  device?: string;
  /** Where the device id and inbox position persist; default `globalThis.localStorage`, else memory. */
  storage?: ClientStorage;
  /** The WebSocket constructor; default `globalThis.WebSocket` (in Node pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Backoff floor in ms (default 500). */
  minDelayMs?: number;
  /** Backoff cap in ms (default 30000). */
  maxDelayMs?: number;
  /** Per-call timeout in ms, and the connect timeout (default 10000). */
  timeoutMs?: number;
  /** A v1 `ping` every this many ms; no frame within it plus `timeoutMs` closes and reconnects (default 25000). */
  pingIntervalMs?: number;
  /** Ack the inbox after this many retained messages (default 20)... */
  ackEveryN?: number;
  /** ...or this many ms after the first unacked one (default 1000). */
  ackAfterMs?: number;
  /** While disconnected: `wait` (queue up to 100 calls, each within its timeout) or `fail` at once (default `wait`). */
  queue?: 'fail' | 'wait';
}

/** The connection's state. */
export type ClientState = 'connecting' | 'connected' | 'disconnected';

/** A `state` event. */
export interface StateEvent {
  readonly state: ClientState;
  /** Why it disconnected: the close code and reason, or what the client did. */
  readonly reason?: string;
  /** Whether the client will reconnect on its own. */
  readonly willRetry: boolean;
}

/** A message pushed to this client. */
export interface MessageEvent {
  readonly data: JsonValue;
  readonly from: string | null;
  readonly to: string | null;
  readonly scope: Scope;
  readonly offset?: number;
  readonly epoch?: string;
  readonly key?: string;
}

/** The events of a {@link Client} and what each carries. */
export interface ClientEvents {
  state: StateEvent;
  message: MessageEvent;
  /** Every message missed while away is replayed (`missed` of them follow). */
  recovered: { readonly missed: number };
  /** Messages were lost to this device; the position moved to the inbox's top. */
  unrecovered: { readonly reason: 'epoch_changed' | 'expired' };
  error: ClientError;
}

/** The codes a {@link ClientError} carries besides the server's error codes. */
export type ClientErrorCode = 'timeout' | 'disconnected' | 'closed' | 'queue_full' | (string & {});

/** A refused or failed call: the server's error code, or what happened on the client side. */
export class ClientError extends Error {
  override readonly name = 'ClientError';
  /** The server's error code (`bad_request`, `forbidden`...) or the client's own. */
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** The subset of a WebSocket the SDK uses. */
interface Socket {
  readonly readyState: number;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: (() => void) | null;
  send(text: string): void;
  close(code?: number, reason?: string): void;
}

const OPEN = 1;
const QUEUE_CAP = 100;

type Listener<T> = (event: T) => void;

/** A tiny typed emitter: browser-safe, no Node EventEmitter. */
class Emitter<E> {
  readonly #listeners = new Map<keyof E, Set<Listener<never>>>();

  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => {
      this.off(event, listener);
    };
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.#listeners.get(event)?.delete(listener);
  }

  protected emit<K extends keyof E>(event: K, value: E[K]): void {
    for (const listener of [...(this.#listeners.get(event) ?? [])]) {
      // A throwing listener must not break the client's own bookkeeping.
      try {
        (listener as Listener<E[K]>)(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

interface Pending {
  readonly frame: Record<string, unknown>;
  readonly resolve: (result: Record<string, JsonValue>) => void;
  readonly reject: (error: ClientError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface Stored {
  device?: string;
  epoch?: string;
  offset?: number;
}

function memoryStorage(): ClientStorage {
  const map = new Map<string, string>();
  return { get: (key) => map.get(key) ?? null, set: (key, value) => void map.set(key, value) };
}

function defaultStorage(): ClientStorage {
  const local = (globalThis as { localStorage?: { getItem(k: string): string | null; setItem(k: string, v: string): void } }).localStorage;
  if (local === undefined) return memoryStorage();
  return {
    get: (key) => local.getItem(key),
    set: (key, value) => {
      local.setItem(key, value);
    },
  };
}

/**
 * The uidpush.v1 client: connects, reconnects with full-jitter backoff, resumes the inbox
 * from the position it keeps per device, dedupes by offset and acks in batches. See
 * docs/client.md.
 *
 * @example
 * const client = new Client('wss://push.example.com', { getToken: fetchToken });
 * client.on('message', (m) => console.log(m.data));
 */
export class Client extends Emitter<ClientEvents> {
  readonly #url: string;
  readonly #options: ClientOptions;
  readonly #storage: ClientStorage;
  readonly #storageKey: string;
  readonly #Ws: WebSocketConstructor;
  readonly #min: number;
  readonly #max: number;
  readonly #timeoutMs: number;
  readonly #pingMs: number;
  readonly #ackEveryN: number;
  readonly #ackAfterMs: number;

  // Connecting from the start: the first attempt begins on the next microtask, so listeners
  // added right after `new Client()` see its `connecting` event.
  #state: ClientState = 'connecting';
  #socket: Socket | undefined;
  #closed = false;
  #attempt = 0;
  #retriedUnauthorized = false;
  #nextId = 1;
  #authId: string | undefined;
  #device: string | undefined;
  #position: Position | undefined;
  #unacked = 0;
  #acked = 0;
  #lastFrameAt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** Sent calls waiting for their answer, by id. */
  readonly #inFlight = new Map<string, Pending>();
  /** Calls made while not connected, sent on the next welcome. */
  readonly #queue: Pending[] = [];
  readonly #wake = (): void => {
    if (this.#reconnectTimer !== undefined) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#connect();
    }
  };
  /** A tab going hidden is no reason to reconnect; one coming back into view is. */
  readonly #visible = (): void => {
    if ((globalThis as { document?: { visibilityState?: string } }).document?.visibilityState !== 'hidden') this.#wake();
  };

  /** Starts connecting to `url` (ws:// or wss://) on the next microtask: add listeners right away. */
  constructor(url: string, options: ClientOptions = {}) {
    super();
    this.#url = url;
    this.#options = options;
    this.#storage = options.storage ?? defaultStorage();
    this.#storageKey = `uidpush:${url}:${options.uid ?? options.device ?? 'default'}`;
    const Ws = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (Ws === undefined) throw new TypeError('no WebSocket: pass options.WebSocket (in Node, the ws package)');
    this.#Ws = Ws;
    this.#min = options.minDelayMs ?? 500;
    this.#max = options.maxDelayMs ?? 30_000;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#pingMs = options.pingIntervalMs ?? 25_000;
    this.#ackEveryN = options.ackEveryN ?? 20;
    this.#ackAfterMs = options.ackAfterMs ?? 1000;
    const stored = this.#load();
    this.#device = options.device ?? stored.device;
    if (stored.epoch !== undefined && stored.offset !== undefined) this.#position = { epoch: stored.epoch, offset: stored.offset };
    const target = globalThis as { addEventListener?: (type: string, listener: () => void) => void };
    // Browsers: back online or back in view means reconnect now, not at the end of a backoff.
    target.addEventListener?.('online', this.#wake);
    target.addEventListener?.('visibilitychange', this.#visible);
    queueMicrotask(() => {
      this.#connect();
    });
  }

  /** The connection's state now. */
  get state(): ClientState {
    return this.#state;
  }

  /** This device's id in the inbox, once known. */
  get device(): string | undefined {
    return this.#device;
  }

  /** The last inbox position received, if any. */
  get position(): Position | undefined {
    return this.#position;
  }

  /** Sends `data` to `uid`: resolves with the server's ack (`online`, `connections`, `offset`...). */
  send(uid: string, data: JsonValue, options: { delivery?: string } = {}): Promise<Record<string, JsonValue>> {
    return this.#call({ type: 'send', to: uid, data, ...(options.delivery === undefined ? {} : { delivery: options.delivery }) });
  }

  /** Publishes `data` to the members of `group`. */
  publish(group: string, data: JsonValue): Promise<Record<string, JsonValue>> {
    return this.#call({ type: 'publish', group, data });
  }

  /** Sends `data` to every logged-in connection. */
  broadcast(data: JsonValue): Promise<Record<string, JsonValue>> {
    return this.#call({ type: 'broadcast', data });
  }

  /** Makes this uid a member of `group`. */
  join(group: string): Promise<Record<string, JsonValue>> {
    return this.#call({ type: 'join', group });
  }

  /** Removes this uid from `group`. */
  leave(group: string): Promise<Record<string, JsonValue>> {
    return this.#call({ type: 'leave', group });
  }

  /** Closes for good: acks what was received, rejects pending calls with `closed`, never reconnects. */
  close(): void {
    if (this.#closed) return;
    this.#flushAck();
    this.#stop();
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#failAll('closed', 'the client was closed');
    const socket = this.#socket;
    this.#teardown();
    socket?.close(CloseCode.Normal, 'client closed');
    this.#setState('disconnected', 'closed', false);
  }

  /** Never again: the flag, and the browser listeners that would reconnect. */
  #stop(): void {
    this.#closed = true;
    const target = globalThis as { removeEventListener?: (type: string, listener: () => void) => void };
    target.removeEventListener?.('online', this.#wake);
    target.removeEventListener?.('visibilitychange', this.#visible);
  }

  #call(frame: Record<string, unknown>): Promise<Record<string, JsonValue>> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(new ClientError('closed', 'the client was closed'));
        return;
      }
      const pending: Pending = { frame, resolve, reject, timer: undefined };
      if (this.#state === 'connected') {
        this.#sendCall(pending);
        return;
      }
      if (this.#options.queue === 'fail') {
        reject(new ClientError('disconnected', 'not connected'));
        return;
      }
      if (this.#queue.length >= QUEUE_CAP) {
        reject(new ClientError('queue_full', `${String(QUEUE_CAP)} calls already wait for a connection`));
        return;
      }
      this.#queue.push(pending);
      // The timeout covers the wait for a connection too: a call never hangs.
      pending.timer = setTimeout(() => {
        const at = this.#queue.indexOf(pending);
        if (at >= 0) this.#queue.splice(at, 1);
        reject(new ClientError('timeout', `no connection within ${String(this.#timeoutMs)} ms`));
      }, this.#timeoutMs);
    });
  }

  #sendCall(pending: Pending): void {
    const id = `c${String(this.#nextId++)}`;
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      this.#inFlight.delete(id);
      pending.reject(new ClientError('timeout', `no answer within ${String(this.#timeoutMs)} ms`));
    }, this.#timeoutMs);
    this.#inFlight.set(id, pending);
    this.#write({ ...pending.frame, id });
  }

  #failAll(code: ClientErrorCode, message: string): void {
    for (const pending of this.#inFlight.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ClientError(code, message));
    }
    this.#inFlight.clear();
    if (code === 'closed' || this.#options.queue === 'fail') {
      for (const pending of this.#queue.splice(0)) {
        clearTimeout(pending.timer);
        pending.reject(new ClientError(code, message));
      }
    }
  }

  #write(frame: Record<string, unknown>): void {
    if (this.#socket?.readyState === OPEN) this.#socket.send(JSON.stringify(frame));
  }

  #setState(state: ClientState, reason: string | undefined, willRetry: boolean): void {
    this.#state = state;
    this.emit('state', reason === undefined ? { state, willRetry } : { state, reason, willRetry });
  }

  #connect(): void {
    if (this.#closed) return;
    if ((globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false) {
      // The browser knows it has no network: an attempt would only fail (and log an error
      // on the page). Wait out another backoff; the `online` event cuts it short.
      this.#retryLater();
      return;
    }
    this.#setState('connecting', undefined, true);
    const socket = new this.#Ws(this.#url, PROTOCOL) as Socket;
    this.#socket = socket;
    // A handshake or an auth that never completes counts as a failed attempt.
    this.#connectTimer = setTimeout(() => {
      if (this.#socket === socket) socket.close(4000, 'connect timeout');
      this.#lost(socket, 1006, 'connect timeout');
    }, this.#timeoutMs);
    socket.onopen = () => {
      void this.#authenticate(socket);
    };
    socket.onmessage = (event) => {
      if (this.#socket === socket && typeof event.data === 'string') this.#receive(event.data);
    };
    socket.onclose = (event) => {
      this.#lost(socket, event.code, event.reason);
    };
    socket.onerror = () => {
      // The close that follows says what happened.
    };
  }

  async #token(): Promise<string | undefined> {
    if (this.#options.getToken !== undefined) return this.#options.getToken();
    return this.#options.token;
  }

  async #authenticate(socket: Socket): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.#token();
    } catch (error) {
      this.emit('error', new ClientError('unauthorized', `getToken failed: ${String(error)}`));
      socket.close(4000, 'no token');
      return;
    }
    if (this.#socket !== socket) return;
    this.#authId = `a${String(this.#nextId++)}`;
    const frame: Record<string, unknown> = { type: 'auth', id: this.#authId };
    if (token !== undefined) frame.token = token;
    else if (this.#options.uid !== undefined) frame.uid = this.#options.uid;
    if (this.#device !== undefined) frame.device = this.#device;
    if (this.#position !== undefined) frame.since = this.#position;
    this.#write(frame);
    this.#scheduleRefresh(token);
  }

  /** Re-auth with a fresh token before this one's `exp`, on the same connection. */
  #scheduleRefresh(token: string | undefined): void {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (token === undefined || this.#options.getToken === undefined) return;
    const exp = jwtExpiry(token);
    if (exp === undefined) return;
    this.#refreshTimer = setTimeout(
      () => {
        void this.#refresh();
      },
      refreshDelay(exp, Date.now()),
    );
  }

  async #refresh(): Promise<void> {
    const socket = this.#socket;
    let token: string;
    try {
      token = await this.#token().then((t) => t ?? '');
    } catch (error) {
      this.emit('error', new ClientError('unauthorized', `getToken failed: ${String(error)}`));
      return;
    }
    if (this.#socket !== socket || this.#state !== 'connected') return;
    this.#call({ type: 'auth', token }).then(
      () => {
        this.#scheduleRefresh(token);
      },
      (error: unknown) => {
        if (error instanceof ClientError) this.emit('error', error);
      },
    );
  }

  #receive(text: string): void {
    this.#lastFrameAt = Date.now();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'welcome':
        this.#welcome(frame);
        return;
      case 'message':
        this.#message(frame);
        return;
      case 'resync':
        this.#adopt({ epoch: frame.inbox.epoch, offset: frame.inbox.offset });
        this.emit('unrecovered', { reason: frame.reason });
        return;
      case 'ack':
      case 'error': {
        const id = frame.id === undefined ? undefined : String(frame.id);
        const pending = id === undefined ? undefined : this.#inFlight.get(id);
        if (pending !== undefined && id !== undefined) {
          this.#inFlight.delete(id);
          clearTimeout(pending.timer);
          if (frame.type === 'ack') pending.resolve({ ...frame.result });
          else pending.reject(new ClientError(frame.code, frame.message));
        } else if (frame.type === 'error') {
          // The auth's refusal, a refused ack, a frame-level error: nothing awaits it.
          this.emit('error', new ClientError(frame.code, frame.message));
        }
        return;
      }
      case 'pong':
        return;
    }
  }

  #welcome(frame: WelcomeFrame): void {
    clearTimeout(this.#connectTimer);
    this.#attempt = 0;
    this.#retriedUnauthorized = false;
    if (frame.device !== undefined && frame.device !== this.#device) {
      this.#device = frame.device;
      this.#save();
    }
    if (frame.inbox !== undefined) {
      if (frame.recovered === false) {
        this.#adopt(frame.inbox);
        this.emit('unrecovered', { reason: frame.reason ?? 'expired' });
      } else {
        // No position of ours in this epoch yet: the replay starts after the device's cursor.
        if (this.#position?.epoch !== frame.inbox.epoch) this.#adopt({ epoch: frame.inbox.epoch, offset: frame.cursor ?? 0 });
        this.#acked = Math.max(this.#acked, frame.cursor ?? 0);
        this.emit('recovered', { missed: frame.missed ?? 0 });
      }
    }
    this.#lastFrameAt = Date.now();
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      this.#tick();
    }, this.#pingMs);
    this.#setState('connected', undefined, true);
    for (const pending of this.#queue.splice(0)) this.#sendCall(pending);
  }

  /** One liveness tick: nothing heard for a ping interval plus the timeout means a dead link. */
  #tick(): void {
    if (Date.now() - this.#lastFrameAt > this.#pingMs + this.#timeoutMs) {
      const socket = this.#socket;
      socket?.close(4000, 'no pong');
      if (socket !== undefined) this.#lost(socket, 1006, 'liveness timeout');
      return;
    }
    this.#write({ type: 'ping' });
  }

  #message(frame: MessageFrame): void {
    const { offset, epoch } = frame;
    if (offset !== undefined && epoch !== undefined) {
      if (isDuplicate(this.#position, epoch, offset)) return;
      this.#adopt({ epoch, offset });
      if (++this.#unacked >= this.#ackEveryN) this.#flushAck();
      else
        this.#ackTimer ??= setTimeout(() => {
          this.#flushAck();
        }, this.#ackAfterMs);
    }
    const event: { -readonly [K in keyof MessageEvent]: MessageEvent[K] } = {
      data: frame.data,
      from: frame.from,
      to: frame.to,
      scope: frame.scope,
    };
    if (offset !== undefined) event.offset = offset;
    if (epoch !== undefined) event.epoch = epoch;
    if (frame.key !== undefined) event.key = frame.key;
    this.emit('message', event);
  }

  #flushAck(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#unacked = 0;
    const upTo = this.#position?.offset;
    if (upTo === undefined || upTo <= this.#acked || this.#state !== 'connected') return;
    this.#acked = upTo;
    this.#write({ type: 'ack', upTo });
  }

  #adopt(position: Position): void {
    if (position.epoch !== this.#position?.epoch) this.#acked = 0;
    this.#position = position;
    this.#save();
  }

  #load(): Stored {
    try {
      const text = this.#storage.get(this.#storageKey);
      return text === null ? {} : (JSON.parse(text) as Stored);
    } catch {
      return {};
    }
  }

  #save(): void {
    const stored: Stored = {};
    if (this.#device !== undefined) stored.device = this.#device;
    if (this.#position !== undefined) {
      stored.epoch = this.#position.epoch;
      stored.offset = this.#position.offset;
    }
    this.#storage.set(this.#storageKey, JSON.stringify(stored));
  }

  #teardown(): void {
    clearTimeout(this.#connectTimer);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#refreshTimer);
    this.#connectTimer = this.#pingTimer = this.#ackTimer = this.#refreshTimer = undefined;
    this.#unacked = 0;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket !== undefined) {
      socket.onopen = socket.onmessage = null;
      socket.onclose = null;
      socket.onerror = () => undefined;
    }
  }

  /** `socket` closed (or was given up on) with `code`: reconnect or stop. */
  #lost(socket: Socket, code: number, reason: string): void {
    if (this.#socket !== socket) return;
    this.#teardown();
    this.#failAll('disconnected', `connection closed (${String(code)})`);
    if (this.#closed) return;
    const why = reason === '' ? String(code) : `${String(code)} ${reason}`;
    let retry = mayReconnect(code);
    if (code === CloseCode.Unauthorized && this.#options.getToken !== undefined && !this.#retriedUnauthorized) {
      // A refused token may just be stale: one more getToken, then stop.
      this.#retriedUnauthorized = true;
      retry = true;
    }
    if (!retry) {
      this.#stop();
      this.#failAll('closed', `connection closed for good (${why})`);
      this.#setState('disconnected', why, false);
      return;
    }
    this.#setState('disconnected', why, true);
    this.#retryLater();
  }

  /** The next attempt after a full-jitter backoff. */
  #retryLater(): void {
    this.#reconnectTimer = setTimeout(
      () => {
        this.#reconnectTimer = undefined;
        this.#connect();
      },
      backoffDelay(this.#attempt++, this.#min, this.#max),
    );
  }
}

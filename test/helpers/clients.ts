import { once } from 'node:events';
import type { Socket } from 'node:net';
import { WebSocket, type ClientOptions } from 'ws';
import { createServer, type ServerOptions, type UidpushServer } from '../../src/index.js';

/** A started server and its ws:// URL; `stop()` closes it. */
export interface Started {
  server: UidpushServer;
  url: string;
  stop(): Promise<void>;
}

/** Starts a real server on 127.0.0.1, port 0. */
export async function startServer(options: ServerOptions = {}): Promise<Started> {
  const server = createServer({
    host: '127.0.0.1',
    port: 0,
    apiPort: 0,
    shutdownGrace: 500,
    ...options,
  });
  const { port } = await server.listen();
  return { server, url: `ws://127.0.0.1:${port}`, stop: () => server.close() };
}

/** A real WebSocket client that queues what it receives, for `next()` to take in order. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: string[] = [];
  closeCode: number | undefined;
  closeReason = '';
  /** The welcome frame, once a test bed authenticated this uidpush.v1 client. */
  welcome: Record<string, unknown> | undefined;
  readonly #waiters: (() => void)[] = [];
  #taken = 0;

  constructor(url: string, options?: ClientOptions, protocols?: string | string[]) {
    this.ws = protocols === undefined ? new WebSocket(url, options) : new WebSocket(url, protocols, options);
    this.ws.on('message', (data: Buffer, isBinary) => {
      this.received.push(isBinary ? `<binary ${data.length}>` : data.toString('utf8'));
      this.#wake();
    });
    this.ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.#wake();
    });
    this.ws.on('error', () => {
      // Surfaced through closeCode; a test that cares asserts on it.
    });
  }

  async open(): Promise<this> {
    if (this.ws.readyState !== WebSocket.OPEN) await once(this.ws, 'open');
    return this;
  }

  /** Sends a text message. */
  send(text: string | Buffer, binary = false): void {
    this.ws.send(text, { binary });
  }

  /** Logs in with `uid` and checks the seed's reply. */
  async login(uid: string): Promise<this> {
    this.send(uid);
    const reply = await this.next();
    if (reply !== `login success, your uid is ${uid}`) {
      throw new Error(`unexpected login reply: ${reply}`);
    }
    return this;
  }

  /** The next message not yet taken, waiting up to `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length <= this.#taken) {
      if (this.closeCode !== undefined) throw new Error(`closed (${this.closeCode}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received[this.#taken++] as string;
  }

  /** The next message, parsed as JSON (uidpush.v1). */
  async nextJson(timeoutMs = 2000): Promise<Record<string, unknown>> {
    return JSON.parse(await this.next(timeoutMs)) as Record<string, unknown>;
  }

  /** Sends a uidpush.v1 frame. */
  sendJson(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  /** Resolves when nothing arrives for `ms`; fails if something does. */
  async nothingFor(ms = 150): Promise<void> {
    const before = this.received.length;
    await new Promise((resolve) => setTimeout(resolve, ms));
    if (this.received.length !== before) {
      throw new Error(`unexpected message: ${this.received.slice(before).join(' | ')}`);
    }
  }

  /** Resolves with the close code once the connection is closed. */
  async closed(timeoutMs = 3000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.closeCode === undefined) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for close');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closeCode;
  }

  close(): void {
    this.ws.close();
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** Opens a client on `url`. */
export function connect(url: string, options?: ClientOptions): Promise<TestClient> {
  return new TestClient(url, options).open();
}

/** Opens a uidpush.v1 client on `url` (subprotocol `uidpush.v1`). */
export function connectV1(url: string, options?: ClientOptions): Promise<TestClient> {
  return new TestClient(url, options, 'uidpush.v1').open();
}

/** Retries `check` until it passes or `timeoutMs` passes: for what is eventually consistent. */
export async function eventually(check: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Settles at `server`'s next `offline` event for `uid`: its last connection here closed and
 * the close is recorded. Call it before the close it waits for.
 */
export function offlineOf(server: UidpushServer, uid: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (gone: string): void => {
      if (gone !== uid) return;
      server.off('offline', on);
      resolve();
    };
    server.on('offline', on);
  });
}

/** Polls `predicate` until true or `timeoutMs` passes. */
export async function waitFor(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What a test bed closes at cleanup: a client, an inner-port client, or a raw socket. */
export type Closable = { close(): void } | { destroy(): unknown };

/** What one test file starts, all ended by `cleanup()` in afterEach. */
export interface TestBed {
  /** Starts the server of this test. */
  setup: (options?: ServerOptions) => Promise<Started>;
  /** The server `setup` started; throws if none is running. */
  started: () => Started;
  /** A seed client on `url`; given a uid, logged in as it. */
  client: (url: string, uid?: string, options?: ClientOptions) => Promise<TestClient>;
  /** A uidpush.v1 client on `url`; given a uid, authenticated as it, its welcome in `welcome`. */
  v1: (url: string, uid?: string, options?: ClientOptions) => Promise<TestClient>;
  /** Closes (or destroys) `x` at cleanup. */
  track: <T extends Closable>(x: T) => T;
  cleanup: () => Promise<void>;
}

/** A test bed: one server, and the clients and raw sockets of its test. */
export function testBed(): TestBed {
  let current: Started | undefined;
  const open: Closable[] = [];
  const track = <T extends Closable>(x: T): T => {
    open.push(x);
    return x;
  };
  return {
    setup: async (options = {}) => {
      current = await startServer(options);
      return current;
    },
    started: () => {
      if (current === undefined) throw new Error('no server started');
      return current;
    },
    client: async (url, uid, options) => {
      const c = track(await connect(url, options));
      if (uid !== undefined) await c.login(uid);
      return c;
    },
    v1: async (url, uid, options) => {
      const c = track(await connectV1(url, options));
      if (uid !== undefined) {
        c.sendJson({ type: 'auth', uid });
        const welcome = await c.nextJson();
        if (welcome.type !== 'welcome' || welcome.uid !== uid) {
          throw new Error(`unexpected auth reply: ${JSON.stringify(welcome)}`);
        }
        c.welcome = welcome;
      }
      return c;
    },
    track,
    cleanup: async () => {
      for (const x of open.splice(0)) {
        if ('close' in x) x.close();
        else x.destroy();
      }
      await current?.stop();
      current = undefined;
    },
  };
}

/**
 * Waits until a push made by `push(probe)` reaches every reader, pushing a new probe until
 * one reaches them all, and consumes the probes. For what settles asynchronously in a
 * cluster, such as the group-channel subscription of a remote node after a join: the
 * event waited for is delivery itself, not time.
 *
 * @param readers one per client: its next message's data, waiting up to the given ms
 *   (throwing when none comes).
 */
export async function untilReached(
  push: (probe: string) => Promise<unknown>,
  readers: readonly ((timeoutMs: number) => Promise<string>)[],
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let k = 0; ; k++) {
    const probe = `probe ${k}`;
    await push(probe);
    let all = true;
    for (const read of readers) {
      // A reader reached by an earlier probe reads through it to this one; channel order
      // holds, so once each has this probe, no probe is left to arrive.
      try {
        while ((await read(250)) !== probe);
      } catch {
        all = false;
      }
    }
    if (all) return;
    if (Date.now() > deadline) throw new Error(`no probe reached every reader within ${timeoutMs} ms`);
  }
}

/**
 * Settles once `holds()` is true: checked at once, then at each `event` of `emitter` (after
 * the listeners registered before this call). Rejects if `endEvent` comes first, or after
 * `timeoutMs`. Call it before the action whose effect it waits for.
 */
function whenHolds(
  emitter: NodeJS.EventEmitter,
  event: string,
  endEvent: string,
  holds: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      emitter.off(event, check);
      emitter.off(endEvent, end);
    };
    const check = (): void => {
      if (!holds()) return;
      done();
      resolve();
    };
    const end = (): void => {
      if (holds()) {
        check();
        return;
      }
      done();
      reject(new Error(`${what}: '${endEvent}' before the condition held`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: condition not met in ${timeoutMs} ms`));
    }, timeoutMs);
    emitter.on(event, check);
    emitter.on(endEvent, end);
    check();
  });
}

/**
 * Settles once `holds()` is true, checked at once and at each 'data' event of a raw socket
 * (after its own gathering listener); rejects if it closes first or `timeoutMs` passes.
 */
export function dataUntil(socket: Socket, holds: () => boolean, timeoutMs = 3000): Promise<void> {
  return whenHolds(socket, 'data', 'close', holds, timeoutMs, 'raw socket');
}

/**
 * Settles once `holds()` is true, checked at once and at each message `client` receives
 * (after it is queued in `received`); rejects if it closes first or `timeoutMs` passes.
 */
export function receivedUntil(client: TestClient, holds: () => boolean, timeoutMs = 3000): Promise<void> {
  return whenHolds(client.ws, 'message', 'close', holds, timeoutMs, 'client');
}

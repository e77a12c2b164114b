import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { mintToken } from '../../src/auth/mint.js';
import {
  Client,
  ClientError,
  type ClientEvents,
  type ClientOptions,
  type MessageEvent,
  type StateEvent,
  type WebSocketConstructor,
} from '../../src/client/index.js';
import type { ConnectionInfo } from '../../src/index.js';
import { startServer, type Started } from '../helpers/clients.js';

// The client SDK (src/client) against a real server, in Node with ws's WebSocket: connect,
// commands, resume after a lost TCP connection, terminal and retryable closes, token
// refresh, batched acks. Every wait is for an event, never a sleep to settle.

const SECRET = 'a-test-secret-of-at-least-32-chars!!';

const servers: Started[] = [];
const clients: Client[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
  vi.unstubAllGlobals();
});

async function server(options: Parameters<typeof startServer>[0] = {}): Promise<Started> {
  const started = await startServer(options);
  servers.push(started);
  return started;
}

/** A client with fast reconnects, recording every event it emits. */
function connect(url: string, options: ClientOptions): Client & { messages: MessageEvent[]; states: StateEvent[] } {
  const client = new Client(url, { WebSocket, minDelayMs: 10, maxDelayMs: 50, timeoutMs: 3000, ...options }) as Client & {
    messages: MessageEvent[];
    states: StateEvent[];
  };
  client.messages = [];
  client.states = [];
  client.on('message', (m) => client.messages.push(m));
  client.on('state', (s) => client.states.push(s));
  clients.push(client);
  return client;
}

/** The next `event` of `client` that satisfies `test`, within `timeoutMs`. */
function next<K extends keyof ClientEvents>(
  client: Client,
  event: K,
  test: (value: ClientEvents[K]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<ClientEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event within ${String(timeoutMs)} ms`));
    }, timeoutMs);
    const off = client.on(event, (value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

const connected = (client: Client): Promise<unknown> =>
  client.state === 'connected' ? Promise.resolve() : next(client, 'state', (s) => s.state === 'connected');

/** Resolves once `client` has `count` messages. */
async function messages(client: Client & { messages: MessageEvent[] }, count: number): Promise<MessageEvent[]> {
  while (client.messages.length < count) await next(client, 'message');
  return client.messages;
}

/** The server-side connection of the next login. */
function nextLogin(started: Started): Promise<ConnectionInfo> {
  return new Promise((resolve) => {
    started.server.once('login', (conn: ConnectionInfo) => {
      resolve(conn);
    });
  });
}

async function api(started: Started, method: string, path: string): Promise<Record<string, unknown>> {
  const port = started.server.address().api?.port ?? 0;
  const res = await fetch(`http://127.0.0.1:${String(port)}${path}`, { method });
  return (await res.json()) as Record<string, unknown>;
}

/**
 * The cursor of `device` in `uid`'s inbox once it reaches `want` (or the last one read after
 * 1000 reads). An ack is a fire-and-forget frame: only the API shows it has landed.
 */
async function cursorReaches(started: Started, uid: string, device: string, want: number): Promise<number> {
  let cursor = 0;
  for (let tries = 0; cursor !== want && tries < 1000; tries++) {
    const inbox = await api(started, 'GET', `/v1/users/${uid}/inbox`);
    cursor = (inbox.devices as { device: string; cursor: number }[]).find((d) => d.device === device)?.cursor ?? 0;
  }
  return cursor;
}

/** ws's WebSocket, counting the sockets the client makes: a reconnect is one more. */
function countedWebSocket(): { WebSocket: WebSocketConstructor; made: () => number } {
  let made = 0;
  class Counted extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      made++;
    }
  }
  return { WebSocket: Counted, made: () => made };
}

/** A browser's window, as far as the client sees it: the global add/removeEventListener. */
function stubWindow(): EventTarget {
  const window = new EventTarget();
  vi.stubGlobal('addEventListener', window.addEventListener.bind(window));
  vi.stubGlobal('removeEventListener', window.removeEventListener.bind(window));
  return window;
}

describe('uidpush/client in Node', () => {
  it('connects and receives a push', async () => {
    const started = await server();
    const client = connect(started.url, { uid: 'alice' });
    await connected(client);
    expect(client.state).toBe('connected');
    await started.server.push('alice', { hello: 'world' });
    const [message] = await messages(client, 1);
    expect(message).toMatchObject({ data: { hello: 'world' }, from: null, to: 'alice', scope: 'uid' });
  });

  it('resolves send with the ack result and rejects a bad name with ClientError bad_request', async () => {
    const started = await server();
    const bob = connect(started.url, { uid: 'bob' });
    const alice = connect(started.url, { uid: 'alice' });
    // Made before the connection: the call waits in the queue.
    const queued = alice.send('bob', 'early');
    await Promise.all([connected(bob), connected(alice)]);
    expect(await queued).toMatchObject({ connections: 1 });
    expect(await alice.send('bob', { hi: 1 })).toEqual({ online: true, connections: 1 });
    const refused = await alice.send('bad:name', 'x').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ClientError);
    expect((refused as ClientError).code).toBe('bad_request');
    expect(await alice.join('room')).toMatchObject({ group: 'room', joined: true });
    expect(await bob.publish('room', 'to the room')).toMatchObject({ connections: 1 });
    expect(await alice.leave('room')).toMatchObject({ group: 'room' });
    expect(await alice.broadcast('all')).toMatchObject({ connections: 2 });
    expect((await messages(bob, 3)).map((m) => m.data)).toEqual(['early', { hi: 1 }, 'all']);
  });

  it('fails fast while disconnected with queue: fail', async () => {
    const started = await server();
    const client = connect(started.url, { uid: 'alice', queue: 'fail' });
    const error = await client.send('bob', 'x').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'disconnected' });
    await connected(client);
    client.close();
    expect(await client.send('bob', 'x').catch((e: unknown) => e)).toMatchObject({ code: 'closed' });
    expect(client.states.at(-1)).toEqual({ state: 'disconnected', reason: 'closed', willRetry: false });
  });

  it('reconnects after its TCP connection dies and has all 50 pushes made meanwhile, in order, once, then live ones', async () => {
    const started = await server({ inbox: true });
    const firstLogin = nextLogin(started);
    const client = connect(started.url, { uid: 'carol', device: 'laptop' });
    await connected(client);
    const conn = (await firstLogin) as unknown as { terminate(): void };
    const recovered = next(client, 'recovered', (r) => r.missed > 0);
    conn.terminate();
    for (let i = 1; i <= 50; i++) await started.server.push('carol', i);
    expect(await recovered).toEqual({ missed: 50 });
    await messages(client, 50);
    await started.server.push('carol', 'live');
    const all = await messages(client, 51);
    expect(all.map((m) => m.data)).toEqual([...Array.from({ length: 50 }, (_, i) => i + 1), 'live']);
    expect(all.map((m) => m.offset)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
    expect(client.states.map((s) => s.state)).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    expect(client.states[2]).toMatchObject({ willRetry: true });
  });

  it('keeps the device the server made up, in storage, and resumes from there in a new Client', async () => {
    const started = await server({ inbox: true });
    const map = new Map<string, string>();
    const storage = { get: (k: string) => map.get(k) ?? null, set: (k: string, v: string) => void map.set(k, v) };
    const first = connect(started.url, { uid: 'dave', storage });
    await connected(first);
    const device = first.device;
    expect(device).toEqual(expect.any(String));
    await started.server.push('dave', 'one');
    await messages(first, 1);
    first.close();
    await started.server.push('dave', 'two');
    const second = connect(started.url, { uid: 'dave', storage });
    await connected(second);
    expect(second.device).toBe(device);
    expect((await messages(second, 1)).map((m) => m.data)).toEqual(['two']);
  });

  it('stops on a kick: disconnected, willRetry false, no reconnect', async () => {
    const started = await server();
    const sockets = countedWebSocket();
    const client = connect(started.url, { uid: 'erin', WebSocket: sockets.WebSocket });
    await connected(client);
    expect(sockets.made()).toBe(1);
    const stopped = next(client, 'state', (s) => s.state === 'disconnected');
    // From here every setTimeout is the test's: a reconnect the client scheduled at the
    // close would be one of them, and runs below, at once.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await started.server.kick('erin');
      expect(await stopped).toMatchObject({ state: 'disconnected', willRetry: false });
      expect((await stopped).reason).toContain('4501');
      vi.runOnlyPendingTimers();
    } finally {
      vi.useRealTimers();
    }
    expect(sockets.made()).toBe(1);
    expect(client.state).toBe('disconnected');
  });

  it('reconnects after a slow-consumer close (4001)', async () => {
    const started = await server();
    const login = nextLogin(started);
    const client = connect(started.url, { uid: 'fay' });
    await connected(client);
    const again = nextLogin(started);
    const lost = next(client, 'state', (s) => s.state === 'disconnected');
    (await login).close(4001, 'slow consumer');
    expect(await lost).toMatchObject({ willRetry: true, reason: '4001 slow consumer' });
    await again;
    await connected(client);
    await started.server.push('fay', 'back');
    expect((await messages(client, 1)).map((m) => m.data)).toEqual(['back']);
  });

  it("reconnects at once on the browser's online event instead of waiting out the backoff", async () => {
    const window = stubWindow();
    const started = await server();
    const login = nextLogin(started);
    const client = connect(started.url, { uid: 'jo', minDelayMs: 600_000, maxDelayMs: 600_000 });
    await connected(client);
    const lost = next(client, 'state', (s) => s.state === 'disconnected');
    (await login).close(4001, 'slow consumer');
    await lost;
    const back = next(client, 'state', (s) => s.state === 'connected');
    window.dispatchEvent(new Event('online'));
    await back;
  });

  it('makes no attempt while the browser says it is offline, and connects on its online event', async () => {
    const window = stubWindow();
    const navigator = { onLine: false };
    vi.stubGlobal('navigator', navigator);
    const started = await server();
    const sockets = countedWebSocket();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let client: ReturnType<typeof connect>;
    try {
      client = connect(started.url, { uid: 'ola', WebSocket: sockets.WebSocket });
      await Promise.resolve();
      // A minute of backoffs while offline: every one of them finds the browser offline.
      await vi.advanceTimersByTimeAsync(60_000);
      expect(sockets.made()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
    navigator.onLine = true;
    const back = next(client, 'state', (s) => s.state === 'connected');
    window.dispatchEvent(new Event('online'));
    await back;
    expect(sockets.made()).toBe(1);
  });

  it('refreshes an expiring token through getToken without a disconnect or a lost message', async () => {
    const started = await server({ inbox: true, jwtSecret: SECRET });
    let calls = 0;
    let firstExpiry = 0;
    const wake: (() => void)[] = [];
    const getToken = async (): Promise<string> => {
      calls++;
      for (const w of wake.splice(0)) w();
      if (firstExpiry === 0) firstExpiry = (Math.floor(Date.now() / 1000) + 2) * 1000;
      return mintToken(SECRET, { uid: 'gus', ttlSeconds: 2 });
    };
    const called = (n: number): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (calls >= n) resolve();
          else wake.push(check);
        };
        check();
      });
    const client = connect(started.url, { getToken });
    await connected(client);
    await started.server.push('gus', 'before');
    // Refreshes until the first token is well past its exp (the server's expiry buckets
    // are one second): a connection still on it would have been closed 4003.
    while (Date.now() < firstExpiry + 1500) await called(calls + 1);
    await started.server.push('gus', 'between');
    await called(calls + 1);
    await started.server.push('gus', 'after');
    expect((await messages(client, 3)).map((m) => m.data)).toEqual(['before', 'between', 'after']);
    expect(client.states.map((s) => s.state)).toEqual(['connecting', 'connected']);
  }, 15_000);

  it('calls getToken once more after a refused token (4502), then stops', async () => {
    const started = await server({ jwtSecret: SECRET });
    let calls = 0;
    const client = connect(started.url, {
      getToken: () => {
        calls++;
        return Promise.resolve('not-a-token');
      },
    });
    const stopped = await next(client, 'state', (s) => s.state === 'disconnected' && !s.willRetry);
    expect(stopped.reason).toContain('4502');
    expect(calls).toBe(2);
  });

  it('closes and reconnects a connection on which nothing arrives within pingIntervalMs + timeoutMs', async () => {
    const started = await server();
    const login = nextLogin(started);
    const client = connect(started.url, { uid: 'ivy', pingIntervalMs: 100, timeoutMs: 200 });
    await connected(client);
    // The server stops reading: no pong comes back, though TCP stays up.
    ((await login) as unknown as { pause(): void }).pause();
    expect(await next(client, 'state', (s) => s.state === 'disconnected')).toMatchObject({
      reason: '1006 liveness timeout',
      willRetry: true,
    });
    await next(client, 'state', (s) => s.state === 'connected');
  });

  it('delivers to both clients of one uid, and to the other once one is closed', async () => {
    const started = await server({ inbox: true });
    const phone = connect(started.url, { uid: 'kim', device: 'phone' });
    const laptop = connect(started.url, { uid: 'kim', device: 'laptop' });
    await Promise.all([connected(phone), connected(laptop)]);
    await started.server.push('kim', 'to both');
    expect((await messages(phone, 1)).map((m) => m.data)).toEqual(['to both']);
    expect((await messages(laptop, 1)).map((m) => m.data)).toEqual(['to both']);
    const gone = new Promise<void>((resolve) => {
      started.server.once('close', () => {
        resolve();
      });
    });
    phone.close();
    await gone;
    expect(await started.server.connectionsOf('kim')).toBe(1);
    await started.server.push('kim', 'still here');
    expect((await messages(laptop, 2)).map((m) => m.data)).toEqual(['to both', 'still here']);
    expect(phone.messages).toHaveLength(1);
  });

  it('emits unrecovered expired and moves to the top when what it missed has left the inbox', async () => {
    const started = await server({ inbox: true, inboxSize: 2 });
    const map = new Map<string, string>();
    const storage = { get: (k: string) => map.get(k) ?? null, set: (k: string, v: string) => void map.set(k, v) };
    const first = connect(started.url, { uid: 'lee', device: 'tab', storage });
    await connected(first);
    await started.server.push('lee', 1);
    await messages(first, 1);
    first.close();
    // Five more while away, in an inbox that keeps two: offsets 2..4 are gone.
    for (let i = 2; i <= 6; i++) await started.server.push('lee', i);
    const second = connect(started.url, { uid: 'lee', device: 'tab', storage });
    expect(await next(second, 'unrecovered')).toEqual({ reason: 'expired' });
    await connected(second);
    expect(second.position?.offset).toBe(6);
    await started.server.push('lee', 'live');
    expect((await messages(second, 1)).map((m) => [m.data, m.offset])).toEqual([['live', 7]]);
  });

  it.each([
    { when: 'every ackEveryN messages', uid: 'hal', count: 5, ackEveryN: 5, ackAfterMs: 60_000 },
    { when: 'ackAfterMs after the first unacked one, short of ackEveryN', uid: 'max', count: 3, ackEveryN: 1000, ackAfterMs: 50 },
  ])('acks in batches: the device cursor moves $when', async ({ uid, count, ackEveryN, ackAfterMs }) => {
    const started = await server({ inbox: true });
    const client = connect(started.url, { uid, device: 'tab', ackEveryN, ackAfterMs });
    await connected(client);
    for (let i = 1; i <= count; i++) await started.server.push(uid, i);
    await messages(client, count);
    expect(await cursorReaches(started, uid, 'tab', count)).toBe(count);
  });
});

import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { testBed, type Started, type TestClient } from '../helpers/clients.js';

const KEY = 'slow-clients-test-key-0123456789';
const bed = testBed();
const raws: Raw[] = [];

/** A raw TCP client: what it received, and when it was closed (ms after it connected). */
interface Raw {
  socket: Socket;
  received: () => string;
  /** Resolves on the socket's close event with the ms since connect. */
  closed: Promise<number>;
  /** Resolves once `text` has been received. */
  saw: (text: string) => Promise<void>;
  /** Writes one byte every `everyMs` until the socket closes: a trickling attacker. */
  trickle: (byte: string, everyMs: number) => void;
}

/** Connections over a cap: each closed at once (well under a second), with no answer. */
async function closedUnanswered(extra: readonly Raw[]): Promise<void> {
  for (const e of extra) {
    expect(await e.closed).toBeLessThan(1000);
    expect(e.received()).toBe('');
  }
}

/** The WebSocket port still takes new clients and delivers between them; returns the receiver. */
async function webSocketStillServed(url: string): Promise<TestClient> {
  const bob = await bed.client(url, 'bob');
  const alice = await bed.client(url, 'alice');
  alice.send('bob:still served');
  expect(await bob.next()).toBe('still served');
  return bob;
}

async function raw(port: number, text = ''): Promise<Raw> {
  const socket = createConnection({ host: '127.0.0.1', port });
  let received = '';
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  socket.on('error', () => {
    // A reset shows as the close event; the test checks what was received before it.
  });
  await new Promise((resolve) => socket.once('connect', resolve));
  const start = Date.now();
  const closed = new Promise<number>((resolve) => {
    socket.once('close', () => {
      for (const w of waiters.splice(0)) w();
      resolve(Date.now() - start);
    });
  });
  const r: Raw = {
    socket,
    received: () => received,
    closed,
    saw: async (expected) => {
      while (!received.includes(expected)) {
        if (socket.destroyed) throw new Error(`closed before ${JSON.stringify(expected)}; got ${JSON.stringify(received)}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
    trickle: (byte, everyMs) => {
      const timer = setInterval(() => {
        if (!socket.destroyed) socket.write(byte);
      }, everyMs);
      void closed.then(() => {
        clearInterval(timer);
      });
    },
  };
  raws.push(r);
  if (text !== '') socket.write(text);
  return r;
}

function apiPort(started: Started): number {
  return started.server.address().api?.port ?? 0;
}

function innerPort(started: Started): number {
  return started.server.address().inner?.port ?? 0;
}

/** The head of a POST /v1/push whose body of `length` bytes is still to come. */
function pushHead(length: number, key: string | undefined, extra = ''): string {
  const auth = key === undefined ? '' : `authorization: Bearer ${key}\r\n`;
  return `POST /v1/push HTTP/1.1\r\nhost: 127.0.0.1\r\n${auth}content-type: application/json\r\ncontent-length: ${length}\r\n${extra}\r\n`;
}

/** The JSON error body at the end of a raw HTTP answer. */
function errorBody(text: string): unknown {
  return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
}

function answers(text: string): number {
  return text.split('HTTP/1.1 ').length - 1;
}

afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.destroy();
  await bed.cleanup();
});

describe('server API timeouts', () => {
  const headers = 300;
  const body = 600;
  // Node sweeps its connections every quarter of the shorter timeout; the rest is slack
  // for a loaded test machine.
  const slack = 700;
  const timeouts = { apiKey: KEY, apiHeadersTimeout: headers, apiRequestTimeout: body, apiKeepAliveTimeout: 300 };

  it.each([
    ['sends nothing', ''],
    ['sends half its headers', 'POST /v1/push HTTP/1.1\r\nhost: 127.0.0.1\r\n'],
    ['sends its headers with a valid key, without the blank line', `POST /v1/push HTTP/1.1\r\nauthorization: Bearer ${KEY}\r\n`],
  ])('answers 408 request_timeout and closes a connection that %s, within apiHeadersTimeout', async (_name, text) => {
    const started = await bed.setup(timeouts);
    const slow = await raw(apiPort(started), text);
    const elapsed = await slow.closed;
    expect(elapsed).toBeGreaterThanOrEqual(headers - 50);
    expect(elapsed).toBeLessThan(headers + slack);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(errorBody(slow.received())).toEqual({
      error: { code: 'request_timeout', message: expect.stringContaining(`headers within ${headers} ms`) as unknown },
    });
  });

  it('answers 408 and closes a connection trickling its headers one byte at a time', async () => {
    const started = await bed.setup(timeouts);
    const slow = await raw(apiPort(started), 'POST /v1/push HTTP/1.1\r\nx-slow: ');
    slow.trickle('a', 50);
    const elapsed = await slow.closed;
    expect(elapsed).toBeLessThan(headers + slack);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it.each([
    ['never arrives', false],
    ['trickles one byte at a time', true],
  ])('answers 408 and closes a keyed request whose body %s, within apiRequestTimeout', async (_name, trickling) => {
    const started = await bed.setup(timeouts);
    const slow = await raw(apiPort(started), pushHead(1000, KEY));
    if (trickling) slow.trickle(' ', 50);
    const elapsed = await slow.closed;
    expect(elapsed).toBeGreaterThanOrEqual(body - 50);
    expect(elapsed).toBeLessThan(body + slack);
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
    expect(errorBody(slow.received())).toMatchObject({ error: { code: 'request_timeout' } });
  });

  it.each([
    ['never arrives', false],
    ['trickles one byte at a time', true],
  ])(
    'answers 401 at once to a keyless request whose body %s, and closes it within apiRequestTimeout without a second answer',
    async (_name, trickling) => {
      const started = await bed.setup(timeouts);
      const slow = await raw(apiPort(started), pushHead(1000, undefined));
      await slow.saw('"unauthorized"');
      if (trickling) slow.trickle(' ', 50);
      const elapsed = await slow.closed;
      expect(elapsed).toBeLessThan(body + slack);
      expect(slow.received()).toMatch(/^HTTP\/1\.1 401 /);
      expect(answers(slow.received())).toBe(1);
    },
  );

  it('closes an idle keep-alive connection after apiKeepAliveTimeout (plus node 1 s)', async () => {
    const started = await bed.setup(timeouts);
    const idle = await raw(apiPort(started), 'GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
    await idle.saw('{"status":"ok"}');
    const elapsed = await idle.closed;
    expect(elapsed).toBeLessThan(300 + 1000 + slack);
    expect(answers(idle.received())).toBe(1);
  });

  it('serves a request that arrives within the timeouts, in pieces', async () => {
    const started = await bed.setup(timeouts);
    const alice = await bed.client(started.url, 'alice');
    const json = '{"uid":"alice","data":"in pieces"}';
    const c = await raw(apiPort(started), pushHead(json.length, KEY));
    c.socket.write(json.slice(0, 10));
    c.socket.write(json.slice(10));
    await c.saw('{"online":1,"connections":1}');
    expect(await alice.next()).toBe('in pieces');
  });
});

const refusedByNode = [
  ['headers over 16 KiB', `GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'too_large'],
  [
    'many headers, 20 KB in all',
    `GET /healthz HTTP/1.1\r\n${'x-h: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(360)}\r\n`,
    431,
    'too_large',
  ],
  ['a garbage request line', 'NOT HTTP AT ALL\r\n\r\n', 400, 'bad_request'],
  ['a bad header line', 'GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n', 400, 'bad_request'],
] as const;

describe('HTTP the API server refuses before a route', () => {
  it.each(refusedByNode)(
    'answers %s with the JSON error body and closes; a bystander request is served',
    async (_name, text, status, code) => {
      const started = await bed.setup({ apiKey: KEY });
      const c = await raw(apiPort(started), text);
      await c.closed;
      expect(c.received()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^\r]+\r\n`));
      expect(c.received()).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/);
      expect(errorBody(c.received())).toEqual({ error: { code, message: expect.any(String) as string } });
      const bystander = await fetch(`http://127.0.0.1:${apiPort(started)}/v1/stats`, { headers: { authorization: `Bearer ${KEY}` } });
      expect(bystander.status).toBe(200);
      expect(await bystander.json()).toMatchObject({ onlineUids: 0 });
    },
  );
});

describe('HTTP the WebSocket port refuses before an upgrade', () => {
  it.each([
    [refusedByNode[0], 'uidpush: request headers too large'],
    [refusedByNode[2], 'uidpush: malformed HTTP request'],
  ])('answers %j with a plain-text reason and closes; WebSocket clients are still served', async ([, text, status], reason) => {
    const started = await bed.setup();
    const c = await raw(Number(new URL(started.url).port), text);
    await c.closed;
    expect(c.received()).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [^\r]+\r\n`));
    expect(c.received()).toMatch(/\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
    expect(c.received().slice(c.received().indexOf('\r\n\r\n') + 4)).toBe(`${reason}\n`);
    await webSocketStillServed(started.url);
  });
});

describe('server API connection cap', () => {
  it.each([
    ['a valid key', KEY],
    ['no key', undefined],
  ])(
    'holds at most apiMaxConnections slow requests with %s: extra connections are closed at once, a WebSocket client still connects and gets a push, the slow ones are cut by the request timeout',
    async (_name, key) => {
      const cap = 20;
      const requestTimeout = 1500;
      const started = await bed.setup({
        apiKey: KEY,
        apiMaxConnections: cap,
        apiHeadersTimeout: 1000,
        apiRequestTimeout: requestTimeout,
      });
      const port = apiPort(started);
      const slow: Raw[] = [];
      for (let i = 0; i < cap; i++) {
        // An answer (100 Continue with the key, 401 without) shows the server holds it.
        const r = await raw(port, pushHead(1000, key, key === undefined ? '' : 'expect: 100-continue\r\n'));
        await r.saw(key === undefined ? '401 Unauthorized' : '100 Continue');
        r.trickle(' ', 100);
        slow.push(r);
      }
      const extra = await Promise.all(Array.from({ length: 10 }, () => raw(port, 'GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n')));
      await closedUnanswered(extra);

      const bob = await webSocketStillServed(started.url);

      for (const r of slow) {
        expect(await r.closed).toBeLessThan(requestTimeout + 250 + 1000);
        expect(r.received()).toMatch(key === undefined ? /^HTTP\/1\.1 401 / : /\r\n\r\nHTTP\/1\.1 408 /);
      }
      const answer = await fetch(`http://127.0.0.1:${port}/v1/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ uid: 'bob', data: 'through the API again' }),
      });
      expect(answer.status).toBe(200);
      expect(await bob.next()).toBe('through the API again');
    },
  );
});

describe('a body over apiBodyLimit', () => {
  /** POSTs `size` bytes with node:http and resolves with what the client saw. */
  function post(port: number, size: number, chunked = false): Promise<{ status?: number; body: string; error?: string }> {
    return new Promise((resolve) => {
      const seen: { status?: number; body: string; error?: string } = { body: '' };
      const req = request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/push',
          headers: {
            authorization: `Bearer ${KEY}`,
            'content-type': 'application/json',
            ...(chunked ? {} : { 'content-length': size }),
          },
        },
        (res) => {
          seen.status = res.statusCode;
          res.setEncoding('utf8');
          res.on('data', (text: string) => (seen.body += text));
        },
      );
      req.on('error', (err) => {
        seen.error = err.message;
      });
      req.on('close', () => {
        resolve(seen);
      });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      for (let sent = 0; sent < size; sent += chunk.length) req.write(chunk);
      req.end();
    });
  }

  it.each([
    ['with a content-length', false],
    ['chunked', true],
  ])('is drained, so a node:http client writing 16 MiB %s reads its 413 and no EPIPE', async (_name, chunked) => {
    const started = await bed.setup({ apiKey: KEY, apiBodyLimit: 1024 * 1024 });
    const seen = await post(apiPort(started), 16 * 1024 * 1024, chunked);
    expect(seen).toEqual({ status: 413, body: JSON.stringify({ error: { code: 'too_large', message: 'body over 1048576 bytes' } }) });
  });

  it('leaves the connection usable after the drained 413', async () => {
    const started = await bed.setup({ apiKey: KEY, apiBodyLimit: 1024 });
    const c = await raw(apiPort(started), pushHead(5000, KEY));
    await c.saw('"too_large"');
    c.socket.write(' '.repeat(5000));
    const json = '{"uid":"nobody","data":"x"}';
    c.socket.write(pushHead(json.length, KEY) + json);
    await c.saw('{"online":0,"connections":0}');
    expect(answers(c.received())).toBe(2);
  });

  it('answers 413 and closes when the declared body is over the 64 MiB drain limit', async () => {
    const started = await bed.setup({ apiKey: KEY });
    const c = await raw(apiPort(started), pushHead(100 * 1024 * 1024, KEY) + ' '.repeat(1000));
    await c.closed;
    expect(c.received()).toMatch(/^HTTP\/1\.1 413 [^]*connection: close\r\n/i);
    expect(errorBody(c.received())).toMatchObject({ error: { code: 'too_large' } });
  });

  it('closes a chunked body that goes on past the 64 MiB drain limit after its 413', async () => {
    const started = await bed.setup({ apiKey: KEY, apiBodyLimit: 1024 });
    const c = await raw(
      apiPort(started),
      `POST /v1/push HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
    );
    const chunk = Buffer.concat([Buffer.from('100000\r\n'), Buffer.alloc(0x100000, 0x20), Buffer.from('\r\n')]);
    // MiB handed to the socket; the server must have read 64 of them before closing.
    let sent = 0;
    const write = (): void => {
      while (!c.socket.destroyed && sent < 100) {
        sent++;
        if (!c.socket.write(chunk)) return;
      }
    };
    c.socket.on('drain', write);
    write();
    await c.closed;
    expect(sent).toBeGreaterThan(64);
    expect(sent).toBeLessThan(100);
    expect(c.received()).toMatch(/^HTTP\/1\.1 413 /);
  });
});

describe('inner port limits', () => {
  const idle = 400;
  const slack = 700;

  it.each([
    ['sends nothing', ''],
    ['holds a half line that never ends', '{"uid":"alice","da'],
  ])('closes a connection that %s within innerIdleTimeout', async (_name, text) => {
    const started = await bed.setup({ innerPort: 0, innerIdleTimeout: idle });
    const c = await raw(innerPort(started), text);
    const elapsed = await c.closed;
    expect(elapsed).toBeGreaterThanOrEqual(idle - 50);
    expect(elapsed).toBeLessThan(idle + slack);
  });

  it('closes a connection trickling a half line one byte at a time', async () => {
    const started = await bed.setup({ innerPort: 0, innerIdleTimeout: idle });
    const c = await raw(innerPort(started), '{"uid":"alice","data":"');
    c.trickle('a', 50);
    expect(await c.closed).toBeLessThan(idle + slack);
  });

  it('keeps a connection that goes on completing lines', async () => {
    const started = await bed.setup({ innerPort: 0, innerIdleTimeout: idle });
    const alice = await bed.client(started.url, 'alice');
    const c = await raw(innerPort(started));
    const opened = Date.now();
    let n = 0;
    while (Date.now() - opened < idle * 3) {
      c.socket.write(`{"uid":"alice","n":${n}}\n`);
      expect(await alice.next()).toBe(`{"uid":"alice","n":${n}}`);
      n++;
      await new Promise((resolve) => setTimeout(resolve, idle / 4)); // the backend's pace
    }
    expect(c.socket.destroyed).toBe(false);
    await c.saw('ok\n'.repeat(n));
  });

  it('holds at most innerMaxConnections: extra connections are closed at once, a WebSocket client still connects and gets a push, the idle ones are cut', async () => {
    const cap = 5;
    const started = await bed.setup({ innerPort: 0, innerIdleTimeout: 1000, innerMaxConnections: cap });
    const port = innerPort(started);
    const held: Raw[] = [];
    for (let i = 0; i < cap; i++) {
      const r = await raw(port, '{"uid":"nobody"}\n{"uid":"half');
      await r.saw('fail\n'); // answered: the server holds it
      held.push(r);
    }
    const extra = await Promise.all(Array.from({ length: 5 }, () => raw(port, '{"uid":"bob"}\n')));
    await closedUnanswered(extra);

    const bob = await webSocketStillServed(started.url);

    for (const r of held) expect(await r.closed).toBeLessThan(1000 + 250 + 1000);
    const again = await raw(port, '{"uid":"bob","n":1}\n');
    await again.saw('ok\n');
    expect(await bob.next()).toBe('{"uid":"bob","n":1}');
  });
});

describe('connection caps and the file limit', () => {
  /** The log lines of `uidpush serve` under `ulimit -n 1024`, up to the last start-up warning. */
  async function startupLog(flags: string): Promise<{ msg: string; fileLimit?: number }[]> {
    const main = join(import.meta.dirname, '../../src/cli/main.ts');
    const child = spawn('bash', [
      '-c',
      `ulimit -n 1024 && exec "${process.execPath}" --import tsx "${main}" serve --port 0 --api-port 0 ${flags}`,
    ]);
    const entries: { msg: string; fileLimit?: number }[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout }).on('line', (line) => {
          const entry = JSON.parse(line) as { msg: string };
          entries.push(entry);
          // The last line listen() logs.
          if (entry.msg.startsWith('server API has no key')) resolve();
        });
        child.once('exit', (code) => {
          reject(new Error(`exited with ${String(code)}`));
        });
      });
    } finally {
      child.kill('SIGKILL');
    }
    return entries;
  }

  it('warns at start when the API and inner-port caps may take over half of the file limit', { timeout: 60_000 }, async () => {
    const log = await startupLog('--inner-port 0');
    expect(log).toContainEqual(
      expect.objectContaining({ fileLimit: 1024, msg: expect.stringContaining('may hold 1256 connections') as unknown }),
    );
    const fits = await startupLog('--api-max-connections 400');
    expect(fits.map((e) => e.msg)).not.toContainEqual(expect.stringContaining('file limit'));
  });
});

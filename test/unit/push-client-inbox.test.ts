import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PushClient, type InboxInfo } from '../../src/api-client/index.js';
import { runApiCommand } from '../../src/cli/api-commands.js';

/** One request as the fake API received it. */
interface Received {
  method: string;
  url: string;
  body: unknown;
}

const INBOX: InboxInfo = {
  uid: 'alice',
  epoch: 'k3j9x0a1b2c3',
  top: 42,
  retained: { from: 1, to: 42, count: 42 },
  devices: [{ device: 'phone', cursor: 40, lastSeen: 1764680000000 }],
};

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

type Answer = (req: Received, res: ServerResponse) => void;

/**
 * An HTTP server on a free port standing for the API (the server side of the inbox is not
 * needed to test what the client sends): it records every request, then calls `answer`.
 */
async function fakeApi(answer: Answer): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const got = { method: req.method ?? '', url: req.url ?? '', body: text === '' ? undefined : (JSON.parse(text) as unknown) };
      received.push(got);
      answer(got, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Answers a push with a retained position, and the inbox route with {@link INBOX}. */
const ok: Answer = (req, res) => {
  json(res, 200, req.url.endsWith('/inbox') ? INBOX : { online: 1, connections: 1, offset: 7, epoch: INBOX.epoch });
};

/** Answers 503 `unavailable` `fails` times, then as {@link ok}. */
function failing(fails: number): Answer {
  let left = fails;
  return (req, res) => {
    if (left-- > 0) json(res, 503, { error: { code: 'unavailable', message: 'broker down' } });
    else ok(req, res);
  };
}

describe('PushClient inbox options', () => {
  it('sends delivery, idempotencyKey and await in the body, and only the ones given', async () => {
    const api = await fakeApi(ok);
    const client = new PushClient({ url: api.url, retries: 0 });
    expect(
      await client.push('alice', { n: 1 }, { delivery: 'durable', idempotencyKey: 'order-7', await: { acked: 2, timeoutMs: 500 } }),
    ).toEqual({ online: 1, connections: 1, offset: 7, epoch: INBOX.epoch });
    await client.push('alice', 'x', { await: { timeoutMs: 100 } });
    await client.pushMany(['a', 'b'], 'y', { delivery: 'latest:score' });
    await client.push('alice', 'z');
    expect(api.received).toEqual([
      {
        method: 'POST',
        url: '/v1/push',
        body: { uid: 'alice', data: { n: 1 }, delivery: 'durable', idempotencyKey: 'order-7', await: { acked: 2, timeoutMs: 500 } },
      },
      { method: 'POST', url: '/v1/push', body: { uid: 'alice', data: 'x', await: { timeoutMs: 100 } } },
      { method: 'POST', url: '/v1/push', body: { uids: ['a', 'b'], data: 'y', delivery: 'latest:score' } },
      { method: 'POST', url: '/v1/push', body: { uid: 'alice', data: 'z' } },
    ]);
  });

  it('retries a push with an idempotencyKey on a 503, with the same body, and never one without', async () => {
    const keyed = await fakeApi(failing(2));
    const client = new PushClient({ url: keyed.url, retries: 2, retryBaseMs: 1 });
    expect(await client.push('alice', 'x', { idempotencyKey: 'k1' })).toMatchObject({ offset: 7 });
    expect(keyed.received).toHaveLength(3);
    expect(new Set(keyed.received.map((r) => JSON.stringify(r.body)))).toEqual(
      new Set(['{"uid":"alice","data":"x","idempotencyKey":"k1"}']),
    );

    const many = await fakeApi(failing(1));
    await new PushClient({ url: many.url, retries: 2, retryBaseMs: 1 }).pushMany(['a', 'b'], 'x', { idempotencyKey: 'k2' });
    expect(many.received).toHaveLength(2);

    const plain = await fakeApi(failing(2));
    const noKey = new PushClient({ url: plain.url, retries: 2, retryBaseMs: 1 });
    await expect(noKey.push('alice', 'x', { delivery: 'durable' })).rejects.toMatchObject({ code: 'unavailable', status: 503 });
    expect(plain.received).toHaveLength(1);
  });

  it('gives up after its retries, and never retries a 4xx even with a key', async () => {
    const down = await fakeApi(failing(10));
    await expect(
      new PushClient({ url: down.url, retries: 1, retryBaseMs: 1 }).push('a', 'x', { idempotencyKey: 'k' }),
    ).rejects.toMatchObject({
      code: 'unavailable',
    });
    expect(down.received).toHaveLength(2);
    const refusing = await fakeApi((_req, res) => {
      json(res, 400, { error: { code: 'bad_request', message: 'body/await: needs one uid (uid, not uids)' } });
    });
    const client = new PushClient({ url: refusing.url, retries: 2, retryBaseMs: 1 });
    await expect(client.pushMany(['a', 'b'], 'x', { idempotencyKey: 'k', await: { timeoutMs: 10 } })).rejects.toMatchObject({
      code: 'bad_request',
      status: 400,
      message: 'body/await: needs one uid (uid, not uids)',
    });
    expect(refusing.received).toHaveLength(1);
  });

  it("extends the call's time limit by the await's timeoutMs", async () => {
    // The fake answers after 300 ms: past the client's own 50 ms, well within 50 + 5000.
    const slow = await fakeApi((req, res) => {
      setTimeout(() => {
        ok(req, res);
      }, 300);
    });
    const client = new PushClient({ url: slow.url, timeoutMs: 50, retries: 0 });
    expect(await client.push('alice', 'x', { await: { timeoutMs: 5000 } })).toMatchObject({ offset: 7 });
    await expect(client.push('alice', 'x')).rejects.toMatchObject({ code: 'timeout', message: 'POST /v1/push: no answer in 50 ms' });
  });

  it('reads a uid inbox, percent-encoding the uid, retried like a read', async () => {
    const api = await fakeApi(failing(1));
    const client = new PushClient({ url: api.url, retries: 1, retryBaseMs: 1 });
    expect(await client.inbox('alice')).toEqual(INBOX);
    expect(await client.inbox('a/b')).toEqual(INBOX);
    expect(api.received.map((r) => `${r.method} ${r.url}`)).toEqual([
      'GET /v1/users/alice/inbox',
      'GET /v1/users/alice/inbox',
      'GET /v1/users/a%2Fb/inbox',
    ]);
  });
});

/** Runs `uidpush <command> <args>` in this process against `url`; its printed lines. */
async function cli(url: string, command: string, args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await runApiCommand(command, args, { UIDPUSH_API_URL: url }, (line) => lines.push(line));
  return lines;
}

describe('CLI push flags and inbox', () => {
  it('sends --delivery, --idempotency-key, --await-acks and --await-timeout in the body', async () => {
    const api = await fakeApi(ok);
    expect(
      await cli(api.url, 'push', [
        'alice',
        '{"n":1}',
        '--json',
        '--delivery',
        'latest:score',
        '--idempotency-key',
        'order-7',
        '--await-acks',
        '2',
        '--await-timeout',
        '1500',
      ]),
    ).toEqual([JSON.stringify({ online: 1, connections: 1, offset: 7, epoch: INBOX.epoch })]);
    await cli(api.url, 'push', ['alice', 'hi', '--await-timeout', '100']);
    await cli(api.url, 'push', ['--uids', 'a,b', 'hi', '--delivery', 'durable']);
    await cli(api.url, 'push', ['alice', 'plain']);
    expect(api.received.map((r) => r.body)).toEqual([
      { uid: 'alice', data: { n: 1 }, delivery: 'latest:score', idempotencyKey: 'order-7', await: { acked: 2, timeoutMs: 1500 } },
      { uid: 'alice', data: 'hi', await: { timeoutMs: 100 } },
      { uids: ['a', 'b'], data: 'hi', delivery: 'durable' },
      { uid: 'alice', data: 'plain' },
    ]);
  });

  it('prints a uid inbox as JSON', async () => {
    const api = await fakeApi(ok);
    expect(await cli(api.url, 'inbox', ['alice'])).toEqual([JSON.stringify(INBOX)]);
    expect(api.received).toEqual([{ method: 'GET', url: '/v1/users/alice/inbox', body: undefined }]);
  });

  it('refuses malformed flags with exit code 2, and passes the server refusal on with exit code 1', async () => {
    const api = await fakeApi((_req, res) => {
      json(res, 400, { error: { code: 'bad_request', message: 'body/delivery: unknown delivery class "x"' } });
    });
    const usage: [string[], RegExp][] = [
      [['alice', 'x', '--await-acks', '2'], /^--await-acks: needs --await-timeout <ms>$/],
      [['alice', 'x', '--await-timeout', 'soon'], /^--await-timeout: expected a positive number of ms, got 'soon'$/],
      [['alice', 'x', '--await-timeout', '0'], /^--await-timeout: expected a positive number of ms/],
      [['alice', 'x', '--await-acks', '1.5', '--await-timeout', '5'], /^--await-acks: expected a positive number of devices, got '1.5'$/],
      [['alice', 'x', '--delivery'], /--delivery/],
    ];
    for (const [args, message] of usage) {
      await expect(cli(api.url, 'push', args)).rejects.toMatchObject({ exitCode: 2, message: expect.stringMatching(message) as unknown });
    }
    await expect(cli(api.url, 'inbox', [])).rejects.toMatchObject({ exitCode: 2 });
    await expect(cli(api.url, 'inbox', ['alice', '--delivery', 'durable'])).rejects.toMatchObject({ exitCode: 2 });
    expect(api.received).toEqual([]);
    await expect(cli(api.url, 'push', ['alice', 'x', '--delivery', 'x'])).rejects.toMatchObject({
      exitCode: 1,
      message: 'bad_request: body/delivery: unknown delivery class "x" (HTTP 400)',
    });
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { connect, testBed } from '../helpers/clients.js';
import { recordingLog } from '../helpers/logs.js';
import { hs256, now } from '../helpers/tokens.js';

const bed = testBed();
afterEach(() => bed.cleanup());

const KEY = 'an-api-key-for-the-debug-log-test';

describe('debug log lines', () => {
  it('logs a close with the connection id, uid, code, reason and who closed', async () => {
    const log = recordingLog();
    const { url, server } = await bed.setup({ logger: log.logger });
    const alice = await bed.client(url, 'alice');
    const bob = await bed.client(url, 'bob');
    const aliceLogin = await log.line('login', { uid: 'alice' });
    alice.ws.close(1000, 'bye');
    const closed = await log.line('connection closed', { uid: 'alice' });
    expect(closed.level).toBe('debug');
    expect(closed.fields).toEqual({ conn: aliceLogin.fields.conn, uid: 'alice', code: 1000, reason: 'bye', by: 'client' });
    await server.kick('bob', 'account closed');
    expect(await bob.closed()).toBe(4501);
    expect((await log.line('connection closed', { uid: 'bob' })).fields).toMatchObject({
      code: 4501,
      reason: 'account closed',
      by: 'server',
    });
  });

  it('logs a refused token with the connection id and code, never the token', async () => {
    const log = recordingLog();
    const { url } = await bed.setup({ logger: log.logger, jwtSecret: 'the-secret-of-this-test-0123456789abcdef' });
    const token = await hs256({ sub: 'alice', exp: now() + 60 }, 'another-secret-that-is-long-enough-0123456');
    const c = bed.track(await connect(url));
    c.send(token);
    expect(await c.closed()).toBe(4502);
    const refused = await log.line('login refused');
    expect(refused.level).toBe('debug');
    expect(refused.fields).toEqual({ conn: expect.any(Number) as number, code: 'unauthorized', reason: 'token signature invalid' });
    await log.line('connection closed', { conn: refused.fields.conn, code: 4502, by: 'server' });
    expect(JSON.stringify(log.lines)).not.toContain(token);
    expect(JSON.stringify(log.lines)).not.toContain(token.split('.')[2]);
  });

  it('logs a refused uid login with its code', async () => {
    const log = recordingLog();
    const { url } = await bed.setup({ logger: log.logger });
    const c = await bed.client(url);
    c.send('a:b');
    await c.next();
    expect((await log.line('login refused')).fields).toMatchObject({ code: 'bad_request', reason: expect.stringMatching(/:/) as string });
  });

  it('logs each API request with method, route, status and ms, never the key', async () => {
    const log = recordingLog();
    const started = await bed.setup({ logger: log.logger, apiKey: KEY });
    const api = `http://127.0.0.1:${String(started.server.address().api?.port)}`;
    const pushed = await fetch(`${api}/v1/push`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uid: 'alice', data: 'hi' }),
    });
    expect(pushed.status).toBe(200);
    const line = await log.line('api request', { route: '/v1/push' });
    expect(line.level).toBe('debug');
    expect(line.fields).toEqual({ method: 'POST', route: '/v1/push', status: 200, ms: expect.any(Number) as number });
    const refused = await fetch(`${api}/v1/users/alice`, { headers: { authorization: `Bearer wrong-${KEY}` } });
    expect(refused.status).toBe(401);
    await log.line('api request', { method: 'GET', route: '/v1/users/:uid', status: 401 });
    expect(JSON.stringify(log.lines)).not.toContain(KEY);
  });
});

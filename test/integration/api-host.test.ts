import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { testBed } from '../helpers/clients.js';

const { setup, client, cleanup } = testBed();
afterEach(cleanup);

/** A real HTTP request to the API with the given headers (Host included, as a rebound page sends it). */
function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: { ...headers, ...(text === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: data === '' ? undefined : (JSON.parse(data) as unknown) });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

const forbidden: unknown = { error: { code: 'forbidden', message: expect.stringContaining('keyless server API') as unknown } };

describe('keyless server API: Host and Origin checks', () => {
  it('refuses a DNS-rebound request (Host: evil.example:1235) with 403 forbidden and delivers nothing', async () => {
    const { url, server } = await setup();
    const port = server.address().api?.port ?? 0;
    const alice = await client(url, 'alice');
    for (const host of ['evil.example:1235', 'evil.example', '127.0.0.1.evil.example', 'localhost.evil.example:1']) {
      expect(await call(port, 'POST', '/v1/push', { host }, { uid: 'alice', data: 'stolen' }), host).toEqual({
        status: 403,
        body: forbidden,
      });
    }
    expect((await call(port, 'GET', '/v1/users', { host: 'evil.example' })).status).toBe(403);
    expect((await call(port, 'POST', '/v1/users/alice/kick', { host: 'evil.example' })).status).toBe(403);
    expect((await call(port, 'GET', '/metrics', { host: 'evil.example' })).status).toBe(403);
    await alice.nothingFor(50);
    // The bystander is still there and served by a request that names loopback.
    expect(await call(port, 'POST', '/v1/push', { host: `127.0.0.1:${port}` }, { uid: 'alice', data: 'ok' })).toEqual({
      status: 200,
      body: { online: 1, connections: 1 },
    });
    expect(await alice.next()).toBe('ok');
  });

  it('serves every loopback Host name, with any port', async () => {
    const { server } = await setup();
    const port = server.address().api?.port ?? 0;
    for (const host of ['localhost', 'localhost:1235', 'LOCALHOST:9', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:1235']) {
      expect((await call(port, 'GET', '/v1/stats', { host }, undefined)).status, host).toBe(200);
    }
  });

  it('refuses a cross-site request from a page of another origin, even with a loopback Host', async () => {
    const { url, server } = await setup();
    const port = server.address().api?.port ?? 0;
    const alice = await client(url, 'alice');
    // A form POST from another site: no body, loopback Host, the page's Origin.
    expect(await call(port, 'POST', '/v1/users/alice/kick', { host: `127.0.0.1:${port}`, origin: 'https://evil.example' })).toEqual({
      status: 403,
      body: forbidden,
    });
    expect(alice.closeCode).toBeUndefined();
    expect((await call(port, 'GET', '/v1/stats', { host: `127.0.0.1:${port}`, origin: 'http://localhost:5173' })).status).toBe(200);
    expect((await server.push('alice', 'not kicked')).connections).toBe(1);
    expect(await alice.next()).toBe('not kicked');
  });

  it('answers /healthz and /readyz whatever the Host: they reveal nothing and change nothing', async () => {
    const { server } = await setup();
    const port = server.address().api?.port ?? 0;
    expect(await call(port, 'GET', '/healthz', { host: 'evil.example' })).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await call(port, 'GET', '/readyz', { host: 'evil.example' })).toEqual({ status: 200, body: { status: 'ready' } });
  });

  it('checks no Host with an API key: the key protects', async () => {
    const key = 'host-test-key-0123456789';
    const { server } = await setup({ apiKey: key });
    const port = server.address().api?.port ?? 0;
    expect(
      (
        await call(port, 'GET', '/v1/stats', {
          host: 'push.example.com',
          origin: 'https://admin.example.com',
          authorization: `Bearer ${key}`,
        })
      ).status,
    ).toBe(200);
    expect((await call(port, 'GET', '/v1/stats', { host: 'push.example.com' })).status).toBe(401);
  });
});

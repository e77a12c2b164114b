import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type UidpushServer } from '../../src/index.js';

const servers: UidpushServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('an embedded server', () => {
  it('opens no server API unless given apiPort, so two run in one process', async () => {
    const a = createServer({ port: 0 });
    const b = createServer({ port: 0 });
    servers.push(a, b);
    const [first, second] = await Promise.all([a.listen(), b.listen()]);
    expect(first.port).not.toBe(second.port);
    expect(first.api).toBeUndefined();
    expect(second.api).toBeUndefined();
    expect(a.options.apiPort).toBeNull();
  });

  it('opens the server API on the port it is given', async () => {
    const server = createServer({ port: 0, apiPort: 0 });
    servers.push(server);
    const { api } = await server.listen();
    expect(api?.port).toBeGreaterThan(0);
    const health = await fetch(`http://127.0.0.1:${String(api?.port)}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
  });
});

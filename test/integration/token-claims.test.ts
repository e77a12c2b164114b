import { decodeJwt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { runApiCommand } from '../../src/cli/api-commands.js';
import { createServer } from '../../src/index.js';
import { connect, connectV1, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { hs256, now, SECRET } from '../helpers/tokens.js';

let started: Started | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started?.stop();
  started = undefined;
});

async function v1Auth(url: string, token: string): Promise<[TestClient, Record<string, unknown>]> {
  const c = await connectV1(url);
  clients.push(c);
  c.sendJson({ type: 'auth', id: 'a', token });
  return [c, await c.nextJson()];
}

/** Runs `uidpush token` in this process and returns the token it printed. */
async function mint(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const lines: string[] = [];
  await runApiCommand('token', args, { UIDPUSH_JWT_SECRET: SECRET, ...env }, (line) => lines.push(line));
  expect(lines).toHaveLength(1);
  return lines[0] ?? '';
}

describe('jwtAudience and jwtIssuer', () => {
  const refused: [string, () => Promise<string>, string][] = [
    ['a token without aud', () => hs256({ sub: 'x', iss: 'https://auth.example' }), 'token has no aud'],
    ['a token for another audience', () => hs256({ sub: 'x', aud: 'other', iss: 'https://auth.example' }), 'token aud not accepted'],
    ['a token without iss', () => hs256({ sub: 'x', aud: 'push' }), 'token has no iss'],
    ['a token from another issuer', () => hs256({ sub: 'x', aud: 'push', iss: 'https://evil.example' }), 'token iss not accepted'],
  ];

  it.each(refused)('refuses %s with 4502 when both are set, and serves a bystander', async (_n, make, reason) => {
    started = await startServer({ jwtSecret: SECRET, jwtAudience: 'push', jwtIssuer: 'https://auth.example' });
    const good = await hs256({ sub: 'bystander', aud: 'push', iss: 'https://auth.example' });
    const bystander = await connect(`${started.url}/?token=${good}`);
    clients.push(bystander);
    expect(await bystander.next()).toBe('login success, your uid is bystander');
    const [c, error] = await v1Auth(started.url, await make());
    expect(error).toMatchObject({ type: 'error', code: 'unauthorized', message: reason, id: 'a' });
    expect(await c.closed()).toBe(4502);
    expect(c.closeReason).toBe(reason);
    expect((await started.server.push('bystander', 'still here')).connections).toBe(1);
    expect(await bystander.next()).toBe('still here');
  });

  it('accepts the right aud and iss, and an aud array that holds the audience', async () => {
    started = await startServer({ jwtSecret: SECRET, jwtAudience: 'push', jwtIssuer: 'https://auth.example' });
    const [, a] = await v1Auth(started.url, await hs256({ sub: 'a', aud: 'push', iss: 'https://auth.example' }));
    expect(a).toMatchObject({ type: 'welcome', uid: 'a' });
    const [, b] = await v1Auth(started.url, await hs256({ sub: 'b', aud: ['api', 'push'], iss: 'https://auth.example' }));
    expect(b).toMatchObject({ type: 'welcome', uid: 'b' });
  });

  it('checks only what is set: an audience alone leaves iss free', async () => {
    started = await startServer({ jwtSecret: SECRET, jwtAudience: 'push' });
    const [, welcome] = await v1Auth(started.url, await hs256({ sub: 'a', aud: 'push', iss: 'anyone' }));
    expect(welcome).toMatchObject({ type: 'welcome', uid: 'a' });
  });

  it('refuses jwtAudience or jwtIssuer without token auth: there would be nothing to check', () => {
    expect(() => createServer({ jwtAudience: 'push' })).toThrow(/jwtAudience and jwtIssuer check tokens/);
    expect(() => createServer({ jwtIssuer: 'x' })).toThrow(/jwtAudience and jwtIssuer check tokens/);
  });
});

describe('uidpush token', () => {
  it('mints a token that expires in one hour unless told otherwise', async () => {
    const claims = decodeJwt(await mint(['alice']));
    expect(claims.sub).toBe('alice');
    expect(typeof claims.iat).toBe('number');
    expect(claims.exp).toBe((claims.iat ?? 0) + 3600);
    expect(decodeJwt(await mint(['alice', '--ttl', '30m'])).exp).toBeLessThanOrEqual(now() + 1800);
  });

  it('mints a token that never expires only when asked with --ttl 0', async () => {
    const claims = decodeJwt(await mint(['alice', '--ttl', '0']));
    expect(claims.exp).toBeUndefined();
    await expect(mint(['alice', '--ttl', 'forever'])).rejects.toThrow(/--ttl: expected .*0: never expires/);
  });

  it('refuses to mint a token for a uid no server would take', async () => {
    await expect(mint(['a:b'])).rejects.toThrow("token: uid must not contain ':'");
    await expect(mint(['all'])).rejects.toThrow(/reserved for broadcast/);
  });

  it('mints aud and iss from flags or the server variables, and the server accepts it', async () => {
    const fromFlags = decodeJwt(await mint(['alice', '--jwt-audience', 'push', '--jwt-issuer', 'https://auth.example']));
    expect(fromFlags).toMatchObject({ aud: 'push', iss: 'https://auth.example' });
    const env = { UIDPUSH_JWT_AUDIENCE: 'push', UIDPUSH_JWT_ISSUER: 'https://auth.example' };
    const token = await mint(['alice'], env);
    expect(decodeJwt(token)).toMatchObject({ aud: 'push', iss: 'https://auth.example' });
    started = await startServer({ jwtSecret: SECRET, jwtAudience: 'push', jwtIssuer: 'https://auth.example' });
    const [, welcome] = await v1Auth(started.url, token);
    expect(welcome).toMatchObject({ type: 'welcome', uid: 'alice' });
  });
});

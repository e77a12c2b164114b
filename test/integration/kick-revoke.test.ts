import { randomUUID } from 'node:crypto';
import { createClient } from '@redis/client';
import { afterEach, describe, expect, it } from 'vitest';
import { runApiCommand } from '../../src/cli/api-commands.js';
import { silentLogger } from '../../src/core/types.js';
import { createRedisBroker, MemoryCluster, type Broker, type ServerOptions } from '../../src/index.js';
import { connect, connectV1, eventually, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { hs256, now, SECRET } from '../helpers/tokens.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const nodes: Started[] = [];
const clients: TestClient[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const n of nodes.splice(0)) await n.stop();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

interface Node extends Started {
  api: string;
}
async function node(options: ServerOptions = {}): Promise<Node> {
  const started = await startServer({ jwtSecret: SECRET, ...options });
  nodes.push(started);
  return { ...started, api: `http://127.0.0.1:${started.server.address().api?.port ?? 0}` };
}
function track(c: TestClient): TestClient {
  clients.push(c);
  return c;
}
/** A seed client logged in at the handshake with `token`; resolves once logged in. */
async function loggedIn(n: Node, uid: string, token: string): Promise<TestClient> {
  const c = track(await connect(`${n.url}/?token=${token}`));
  expect(await c.next()).toBe(`login success, your uid is ${uid}`);
  return c;
}
/** Connects with `token` at the handshake and expects it refused with 4502 and `reason`. */
async function refused(n: Node, token: string, reason: string): Promise<void> {
  const c = track(await connect(`${n.url}/?token=${token}`));
  expect(await c.next()).toBe(`error: unauthorized ${reason}`);
  expect(await c.closed()).toBe(4502);
  expect(c.closeReason).toBe(reason);
}
async function kick(n: Node, uid: string, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${n.api}/v1/users/${encodeURIComponent(uid)}/kick`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const REVOKED = 'token revoked: issued before its uid was kicked';
/** A token issued before any kick the test makes (iat counts whole seconds). */
const oldToken = (sub: string): Promise<string> => hs256({ sub, iat: now() - 10, exp: now() + 3600 });
const freshToken = (sub: string): Promise<string> => hs256({ sub, iat: now(), exp: now() + 3600 });

describe('kick without revokeTokens', () => {
  it('lets the kicked client log in again with the same token (as before)', async () => {
    const a = await node();
    const token = await oldToken('alice');
    const alice = await loggedIn(a, 'alice', token);
    expect(await kick(a, 'alice', { reason: 'bye' })).toEqual({ status: 200, body: { uid: 'alice', kicked: 1 } });
    expect(await alice.closed()).toBe(4501);
    await loggedIn(a, 'alice', token);
  });
});

describe('kick with revokeTokens, one node', () => {
  it('refuses the old token (4502) on reconnect, accepts a token minted after, serves a bystander', async () => {
    const a = await node();
    const bob = await loggedIn(a, 'bob', await oldToken('bob'));
    const token = await oldToken('alice');
    const alice = await loggedIn(a, 'alice', token);
    const before = Date.now();
    const answer = await kick(a, 'alice', { reason: 'account closed', revokeTokens: true });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ uid: 'alice', kicked: 1 });
    const revoked = answer.body.revoked as { before: number; until: number };
    expect(revoked.before).toBe(Math.floor(before / 1000) * 1000);
    expect(revoked.until).toBeGreaterThanOrEqual(before + 24 * 3600 * 1000);
    expect(await alice.closed()).toBe(4501);
    expect(alice.closeReason).toBe('account closed');

    await refused(a, token, REVOKED);
    const v1 = track(await connectV1(a.url));
    v1.sendJson({ type: 'auth', id: 1, token });
    expect(await v1.nextJson()).toEqual({ type: 'error', code: 'unauthorized', message: REVOKED, id: 1 });
    expect(await v1.closed()).toBe(4502);
    await refused(a, await hs256({ sub: 'alice' }), 'token revoked: it has no iat and its uid was kicked');

    await loggedIn(a, 'alice', await freshToken('alice'));
    await loggedIn(a, 'bob', await oldToken('bob')); // other uids' tokens are untouched
    expect((await a.server.push('bob', 'still here')).connections).toBe(2);
    expect(await bob.next()).toBe('still here');
  });

  it('does it from the program too: server.kick(uid, reason, { revokeTokens: true })', async () => {
    const a = await node();
    const token = await oldToken('alice');
    const alice = await loggedIn(a, 'alice', token);
    expect(a.server.kick('alice', 'bye', { revokeTokens: true })).toBe(1);
    expect(await alice.closed()).toBe(4501);
    await refused(a, token, REVOKED);
  });

  it('does it from the CLI: uidpush kick <uid> --revoke-tokens', async () => {
    const a = await node();
    const token = await oldToken('alice');
    const alice = await loggedIn(a, 'alice', token);
    const lines: string[] = [];
    await runApiCommand('kick', ['alice', '--revoke-tokens', '--api-url', a.api], {}, (line) => lines.push(line));
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ uid: 'alice', kicked: 1, revoked: { before: expect.any(Number) as number } });
    expect(await alice.closed()).toBe(4501);
    await refused(a, token, REVOKED);
  });

  it('refuses a revokeTokens that is not a boolean', async () => {
    const a = await node();
    expect(await kick(a, 'alice', { revokeTokens: 'yes' })).toMatchObject({ status: 400, body: { error: { code: 'bad_request' } } });
  });
});

/** The cluster cases, on a cluster made by `broker()`; `store` reads the shared cut-offs. */
function clusterCases(name: string, make: () => { broker: () => Broker; store: () => Broker['revocations'] }): void {
  describe(`kick with revokeTokens, ${name}`, () => {
    it('refuses the old token on another node and on a node started after the kick', async () => {
      const cluster = make();
      const a = await node({ broker: cluster.broker() });
      const b = await node({ broker: cluster.broker() });
      const token = await oldToken('alice');
      const alice = await loggedIn(a, 'alice', token);
      const bystander = await loggedIn(b, 'bob', await oldToken('bob'));
      expect((await kick(a, 'alice', { revokeTokens: true })).body).toMatchObject({ uid: 'alice', kicked: 1 });
      expect(await alice.closed()).toBe(4501);
      await refused(b, token, REVOKED);
      await loggedIn(b, 'alice', await freshToken('alice'));
      const c = await node({ broker: cluster.broker() });
      await refused(c, token, REVOKED);
      expect((await b.server.push('bob', 'still here')).connections).toBe(1);
      expect(await bystander.next()).toBe('still here');
    });

    it('forgets the cut-off after revokeTtl, in the store and on every node', async () => {
      const cluster = make();
      const a = await node({ broker: cluster.broker(), revokeTtl: 400 });
      const b = await node({ broker: cluster.broker(), revokeTtl: 400 });
      const token = await oldToken('alice');
      expect((await kick(a, 'alice', { revokeTokens: true })).status).toBe(200);
      await refused(b, token, REVOKED);
      expect((await cluster.store().revocations()).map((r) => r.uid)).toEqual(['alice']);
      // Polls: the cut-off leaves the store when its TTL runs out (in Redis, another process).
      await eventually(async () => {
        expect(await cluster.store().revocations()).toEqual([]);
      }, 5000);
      // Past revokeTtl, a token that has not expired is accepted again: hence the advice
      // to set revokeTtl to the longest token lifetime.
      await loggedIn(b, 'alice', token);
      await loggedIn(a, 'alice', token);
    });
  });
}

clusterCases('in-process cluster (MemoryCluster)', () => {
  const shared = new MemoryCluster();
  return { broker: () => shared.createBroker(), store: () => shared.createBroker().revocations };
});

clusterCases('Redis', () => {
  const namespace = `uidpush-test-${randomUUID()}`;
  // The nodes delete their presence on close; the cut-offs' hash would outlive the test.
  cleanups.push(async () => {
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    await client.del(`${namespace}:revoked`);
    client.destroy();
  });
  const made: Broker[] = [];
  const broker = (): Broker => {
    const b = createRedisBroker(REDIS_URL, silentLogger, { namespace, presenceTtl: 5000 });
    made.push(b);
    return b;
  };
  // Read through the first node's broker: the store is Redis, whichever node asks.
  return { broker, store: () => (made[0] as Broker).revocations };
});

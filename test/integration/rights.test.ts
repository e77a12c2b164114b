import { afterEach, describe, expect, it } from 'vitest';
import type { ServerOptions } from '../../src/index.js';
import { connect, connectV1, startServer, type Started, type TestClient } from '../helpers/clients.js';
import { hs256, SECRET } from '../helpers/tokens.js';

let started: Started | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started?.stop();
  started = undefined;
});

async function setup(options: ServerOptions): Promise<string> {
  started = await startServer(options);
  return started.url;
}
async function v1Token(url: string, claims: Record<string, unknown>): Promise<TestClient> {
  const c = await connectV1(url);
  clients.push(c);
  c.sendJson({ type: 'auth', token: await hs256(claims) });
  expect(await c.nextJson()).toMatchObject({ type: 'welcome' });
  return c;
}
async function seedToken(url: string, claims: Record<string, unknown>): Promise<TestClient> {
  const c = await connect(url);
  clients.push(c);
  c.send(await hs256(claims));
  expect(await c.next()).toMatch(/^login success/);
  return c;
}
async function v1Uid(url: string, uid: string): Promise<TestClient> {
  const c = await connectV1(url);
  clients.push(c);
  c.sendJson({ type: 'auth', uid });
  await c.nextJson();
  return c;
}

describe('rights with auth on (defaults: send only, join listed groups)', () => {
  it('grants send and refuses broadcast by default', async () => {
    const url = await setup({ jwtSecret: SECRET });
    const alice = await v1Token(url, { sub: 'alice' });
    const bob = await v1Token(url, { sub: 'bob' });
    alice.sendJson({ type: 'send', id: 1, to: 'bob', data: 'ok' });
    expect(await bob.nextJson()).toMatchObject({ data: 'ok' });
    expect(await alice.nextJson()).toMatchObject({ type: 'ack', id: 1 });
    alice.sendJson({ type: 'broadcast', id: 2, data: 'no' });
    expect(await alice.nextJson()).toEqual({ type: 'error', code: 'forbidden', message: 'no right to broadcast', id: 2 });
    await bob.nothingFor(50);
  });

  it('grants broadcast from the rights claim, and refuses send when the claim omits it', async () => {
    const url = await setup({ jwtSecret: SECRET });
    const caster = await v1Token(url, { sub: 'caster', rights: ['broadcast'] });
    const bob = await v1Token(url, { sub: 'bob' });
    caster.sendJson({ type: 'broadcast', data: 'hear ye' });
    expect(await bob.nextJson()).toMatchObject({ scope: 'broadcast', data: 'hear ye' });
    expect(await caster.nextJson()).toMatchObject({ scope: 'broadcast', data: 'hear ye' });
    caster.sendJson({ type: 'send', id: 3, to: 'bob', data: 'x' });
    expect(await caster.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 3 });
  });

  it('lets a client join only the groups its token lists', async () => {
    const url = await setup({ jwtSecret: SECRET });
    const c = await v1Token(url, { sub: 'c', groups: ['news'] });
    c.sendJson({ type: 'join', id: 1, group: 'news' });
    expect(await c.nextJson()).toMatchObject({ type: 'ack', result: { joined: true } });
    c.sendJson({ type: 'join', id: 2, group: 'admin' });
    expect(await c.nextJson()).toEqual({ type: 'error', code: 'forbidden', message: 'no right to join group admin', id: 2 });
  });

  it('grants publish to listed groups only, with the publish right', async () => {
    const url = await setup({ jwtSecret: SECRET });
    const member = await v1Token(url, { sub: 'm', groups: ['news'] });
    member.sendJson({ type: 'join', group: 'news' });
    const editor = await v1Token(url, { sub: 'e', rights: ['publish'], groups: ['news'] });
    const reader = await v1Token(url, { sub: 'r', groups: ['news'] });
    editor.sendJson({ type: 'publish', id: 1, group: 'news', data: 'extra' });
    expect(await member.nextJson()).toMatchObject({ scope: 'group', to: 'news', data: 'extra' });
    editor.sendJson({ type: 'publish', id: 2, group: 'other', data: 'x' });
    expect(await editor.nextJson()).toMatchObject({ type: 'ack', id: 1 });
    expect(await editor.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 2 });
    reader.sendJson({ type: 'publish', id: 3, group: 'news', data: 'x' });
    expect(await reader.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 3 });
  });

  it('applies the same rights to the seed protocol: all: needs broadcast', async () => {
    const url = await setup({ jwtSecret: SECRET });
    const plain = await seedToken(url, { sub: 'plain' });
    const bob = await seedToken(url, { sub: 'bob' });
    plain.send('all:nope');
    expect(await plain.next()).toBe('error: forbidden no right to broadcast');
    plain.send('bob:yes');
    expect(await bob.next()).toBe('yes');
    const caster = await seedToken(url, { sub: 'caster', rights: ['broadcast'] });
    caster.send('all:yes');
    expect(await bob.next()).toBe('yes');
    caster.send('bob:no');
    expect(await caster.next()).toBe('yes');
    expect(await caster.next()).toBe('error: forbidden no right to send to a uid');
  });

  it('lets the operator set the defaults with clientRights', async () => {
    const url = await setup({ jwtSecret: SECRET, clientRights: ['send', 'broadcast'] });
    const c = await v1Token(url, { sub: 'c' });
    c.sendJson({ type: 'broadcast', id: 1, data: 'allowed now' });
    expect(await c.nextJson()).toMatchObject({ scope: 'broadcast' });
  });
});

describe('rights with auth off (the seed way)', () => {
  it('keeps every right the seed gives, including all: and any group', async () => {
    const url = await setup({});
    const a = await v1Uid(url, 'a');
    const b = await v1Uid(url, 'b');
    b.sendJson({ type: 'join', id: 1, group: 'anything' });
    expect(await b.nextJson()).toMatchObject({ type: 'ack' });
    a.sendJson({ type: 'publish', group: 'anything', data: 1 });
    expect(await b.nextJson()).toMatchObject({ scope: 'group', data: 1 });
    a.sendJson({ type: 'broadcast', data: 2 });
    expect(await b.nextJson()).toMatchObject({ scope: 'broadcast', data: 2 });
  });

  it('narrows them with clientRights: no broadcast, no join', async () => {
    const url = await setup({ clientRights: ['send'] });
    const s = await connect(url);
    clients.push(s);
    await s.login('s');
    s.send('all:x');
    expect(await s.next()).toBe('error: forbidden no right to broadcast');
    const j = await v1Uid(url, 'j');
    j.sendJson({ type: 'join', id: 1, group: 'g' });
    expect(await j.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 1 });
    j.sendJson({ type: 'publish', id: 2, group: 'g', data: 1 });
    expect(await j.nextJson()).toMatchObject({ type: 'error', code: 'forbidden', id: 2 });
  });
});

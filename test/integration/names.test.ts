import { afterEach, describe, expect, it } from 'vitest';
import { testBed, type Started, type TestClient } from '../helpers/clients.js';
import { innerClient } from '../helpers/inner.js';
import { hs256, SECRET } from '../helpers/tokens.js';

const bed = testBed();
afterEach(bed.cleanup);

const setup = bed.setup;
/** A seed client logged in as `uid` (auth off). */
const seed = (url: string, uid: string): Promise<TestClient> => bed.client(url, uid);
function apiOf(s: Started): string {
  return `http://127.0.0.1:${s.server.address().api?.port ?? 0}`;
}
/** A bystander that must still be served after the hostile input. */
async function stillServed(s: Started, bystander: TestClient, uid: string): Promise<void> {
  expect((await s.server.push(uid, 'still here')).connections).toBe(1);
  expect(await bystander.next()).toBe('still here');
}

/** Names each entry point must refuse, with the rule the refusal names. */
const HOSTILE: [string, string, RegExp][] = [
  ['the broadcast address', 'all', /'all' is reserved for broadcast/],
  ['a colon', 'a:b', /must not contain ':'/],
  ['a newline', 'eve\nadmin', /control characters/],
  ['NUL', 'eve\u0000', /control characters/],
  ['ESC', '\u001b[2Jeve', /control characters/],
  ['a C1 control', 'eve\u0085', /C1 control characters/],
  ['a bidi override', 'eve\u202egnp', /bidirectional overrides/],
  ['a bidi isolate', 'eve\u2067', /bidirectional isolates/],
  ['a line separator', 'eve\u2028', /line or paragraph separators/],
  ['a lone surrogate', '\ud800', /lone surrogate/],
];
// A lone surrogate cannot be sent as UTF-8 at all (ws closes with 1007), so the seed
// protocol never sees one; every other hostile name reaches it.
const SEED_HOSTILE = HOSTILE.filter(([name]) => name !== 'a lone surrogate');

describe('one set of name rules at every entry point', () => {
  it.each(SEED_HOSTILE)('seed login: refuses %s, keeps the connection, serves a bystander', async (_n, uid, rule) => {
    const s = await setup();
    const bystander = await seed(s.url, 'bystander');
    const c = await bed.client(s.url);
    c.send(uid);
    const reply = await c.next();
    expect(reply).toMatch(/^error: bad_request uid /);
    expect(reply).toMatch(rule);
    await c.login('fine-after-all');
    await stillServed(s, bystander, 'bystander');
  });

  it('seed push: refuses a target no login could take, instead of dropping it silently', async () => {
    const s = await setup();
    const alice = await seed(s.url, 'alice');
    alice.send('bob\u202e:hi');
    expect(await alice.next()).toBe('error: bad_request uid must not contain bidirectional overrides (U+202A-U+202E)');
    alice.send('offline-bob:hi'); // a valid uid that is offline is still dropped silently
    await alice.nothingFor();
  });

  it.each(HOSTILE)('v1 auth frame: refuses uid with %s', async (_n, uid, rule) => {
    const s = await setup();
    const bystander = await seed(s.url, 'bystander');
    const c = await bed.v1(s.url);
    // JSON.stringify escapes a lone surrogate, so it reaches the server as valid UTF-8.
    c.sendJson({ type: 'auth', id: 1, uid });
    const error = await c.nextJson();
    expect(error).toMatchObject({ type: 'error', code: 'bad_request', id: 1 });
    expect(error.message).toMatch(rule);
    expect(s.server.local.isOnline(uid)).toBe(false);
    await stillServed(s, bystander, 'bystander');
  });

  it('v1 frames: refuses a hostile send target and group names, naming the field', async () => {
    const s = await setup();
    const c = await bed.v1(s.url);
    c.sendJson({ type: 'auth', uid: 'alice' });
    await c.nextJson();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ type: 'send', id: 1, to: '\ud800', data: 1 }, /^to: uid must not contain a lone surrogate$/],
      [{ type: 'send', id: 2, to: 'all', data: 1 }, /^to: uid 'all' is reserved/],
      [{ type: 'send', id: 3, to: 'a:b', data: 1 }, /^to: uid must not contain ':'/],
      [{ type: 'publish', id: 4, group: 'news\n', data: 1 }, /^group: group must not contain control characters$/],
      [{ type: 'join', id: 5, group: 'g\u2066' }, /^group: group must not contain bidirectional isolates/],
      [{ type: 'leave', id: 6, group: 'g\u0090' }, /^group: group must not contain C1 control characters/],
      [{ type: 'join', id: 7, group: 'x'.repeat(129) }, /^group: group longer than 128 bytes$/],
    ];
    for (const [frame, message] of cases) {
      c.sendJson(frame);
      const error = await c.nextJson();
      expect(error).toMatchObject({ type: 'error', code: 'bad_request', id: frame.id });
      expect(error.message).toMatch(message);
    }
    c.sendJson({ type: 'join', id: 8, group: 'all' }); // a group may be called all
    expect(await c.nextJson()).toEqual({ type: 'ack', id: 8, result: { group: 'all', joined: true } });
  });

  it.each(HOSTILE)('token sub: refuses %s with unauthorized and close 4502', async (_n, sub, rule) => {
    const s = await setup({ jwtSecret: SECRET });
    const bystanderToken = await hs256({ sub: 'bystander' });
    const bystander = await bed.client(`${s.url}/?token=${bystanderToken}`);
    expect(await bystander.next()).toBe('login success, your uid is bystander');
    const c = await bed.v1(s.url);
    c.sendJson({ type: 'auth', id: 'a', token: await hs256({ sub }) });
    const error = await c.nextJson();
    expect(error).toMatchObject({ type: 'error', code: 'unauthorized', id: 'a' });
    expect(error.message).toMatch(/^invalid sub: uid /);
    expect(error.message).toMatch(rule);
    expect(await c.closed()).toBe(4502);
    expect(c.closeReason).toMatch(rule);
    expect(s.server.local.isOnline(sub)).toBe(false);
    await stillServed(s, bystander, 'bystander');
  });

  it('token sub: refuses a hostile sub in the handshake too', async () => {
    const s = await setup({ jwtSecret: SECRET });
    const c = await bed.client(`${s.url}/?token=${await hs256({ sub: 'a:b' })}`);
    expect(await c.next()).toBe("error: unauthorized invalid sub: uid must not contain ':'");
    expect(await c.closed()).toBe(4502);
  });

  it('token groups: refuses a groups claim holding a name no frame could use', async () => {
    const s = await setup({ jwtSecret: SECRET });
    const c = await bed.v1(s.url);
    c.sendJson({ type: 'auth', id: 'a', token: await hs256({ sub: 'alice', groups: ['news', 'bad\u202e'] }) });
    expect(await c.nextJson()).toMatchObject({ code: 'unauthorized', message: 'invalid groups claim' });
    expect(await c.closed()).toBe(4502);
  });

  it('server API: refuses hostile uids and groups in paths and bodies with 400, naming the rule', async () => {
    const s = await setup();
    const bystander = await seed(s.url, 'bystander');
    const api = apiOf(s);
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; message: string }> => {
      const res = await fetch(`${api}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = (await res.json()) as { error?: { code: string; message: string } };
      if (res.status === 400) expect(json.error?.code).toBe('bad_request');
      return { status: res.status, message: json.error?.message ?? '' };
    };
    expect(await call('POST', '/v1/push', { uid: 'a\u202eb', data: 'x' })).toEqual({
      status: 400,
      message: 'body/uid: uid must not contain bidirectional overrides (U+202A-U+202E)',
    });
    expect(await call('POST', '/v1/push', { uids: ['ok', '\ud800'], data: 'x' })).toEqual({
      status: 400,
      message: 'body/uids/1: uid must not contain a lone surrogate',
    });
    expect(await call('GET', '/v1/users/all')).toEqual({ status: 400, message: "params/uid: uid 'all' is reserved for broadcast" });
    expect(await call('GET', `/v1/users/${encodeURIComponent('eve\n')}`)).toMatchObject({ status: 400, message: /control characters/ });
    expect(await call('POST', `/v1/users/${encodeURIComponent('a:b')}/kick`)).toMatchObject({ status: 400, message: /':'/ });
    expect(await call('PUT', `/v1/groups/${encodeURIComponent('g\u2069')}/members/alice`)).toMatchObject({
      status: 400,
      message: /^params\/group: group must not contain bidirectional isolates/,
    });
    expect(await call('PUT', '/v1/groups/news/members/all')).toMatchObject({ status: 400, message: /^params\/uid: uid 'all'/ });
    expect(await call('POST', `/v1/groups/${encodeURIComponent('g\u0085')}/push`, { data: 1 })).toMatchObject({
      status: 400,
      message: /C1 control characters/,
    });
    // A group may be called all; a uid with spaces and emoji is fine.
    expect(await call('PUT', `/v1/groups/all/members/${encodeURIComponent('Zoë 😀')}`)).toMatchObject({ status: 200 });
    await stillServed(s, bystander, 'bystander');
  });

  it('inner port: answers a hostile uid with error bad_request and keeps the connection', async () => {
    const s = await setup({ innerPort: 0 });
    const bystander = await seed(s.url, 'bystander');
    const port = bed.track(await innerClient(s.server.address().inner?.port ?? 0));
    for (const [, uid] of HOSTILE) {
      port.send(`${JSON.stringify({ uid, text: 'x' })}\n`);
      expect(await port.answer()).toBe('error bad_request');
    }
    port.send(`${JSON.stringify({ uid: 'bystander', text: 'hi' })}\n`);
    expect(await port.answer()).toBe('ok');
    expect(JSON.parse(await bystander.next())).toEqual({ uid: 'bystander', text: 'hi' });
  });
});

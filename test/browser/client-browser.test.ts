import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientBundleOptions } from '../../scripts/client-bundle.js';
import { startExample, type Example } from '../../examples/browser/serve.js';
import type { ConnectionInfo } from '../../src/index.js';

// The client SDK's browser bundle in headless Chromium (Debian's package, driven by
// playwright-core), on the example notifications page against a real server started here.
// Each behaviour waits for what the page reports (window.uidpush), never for time to pass.

const inCi = process.env.CI === 'true';
const CHROMIUM = process.env.UIDPUSH_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ROOT = join(import.meta.dirname, '../..');
/** Where the screenshot of the example page goes: a CI artifact, never committed. */
const ARTIFACTS = process.env.UIDPUSH_ARTIFACTS ?? join(tmpdir(), 'uidpush-artifacts');

/** What the example page records, as the tests read it. */
interface Seen {
  messages: { data: unknown; offset?: number }[];
  states: { state: string; reason?: string; willRetry: boolean }[];
  recovered: number[];
  unrecovered: string[];
  tokens: number;
}

// The page's globals, as the functions run in it by page.evaluate see them (this project
// compiles without the DOM's types).
declare global {
  var uidpush: Seen;
  var sockets: number;
}

/** Counts the WebSockets a page opens, to tell a reconnect from none. */
const COUNT_SOCKETS = `
  const Native = WebSocket;
  globalThis.sockets = 0;
  globalThis.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      globalThis.sockets++;
    }
  };
`;

let browser: Browser | undefined;
let example: Example | undefined;

/** The browser and the example, started by beforeAll. */
function running(): { browser: Browser; example: Example } {
  if (browser === undefined || example === undefined) throw new Error('beforeAll did not start the browser and the example');
  return { browser, example };
}
const contexts: BrowserContext[] = [];
/** Console errors and uncaught exceptions of every page, checked after each test. */
const problems: string[] = [];

beforeAll(async () => {
  if (!hasChromium) throw new Error(`no Chromium at ${CHROMIUM} (CI=true): .ci/run installs it with apt-get install chromium`);
  // The bundle of the sources under test, not whatever dist holds from the last build.
  const bundle = await build({ ...clientBundleOptions(ROOT), write: false });
  const [file] = bundle.outputFiles;
  if (file === undefined) throw new Error('esbuild wrote no bundle');
  example = await startExample({ bundle: file.contents });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // This machine's network is closed: Chromium's own background traffic only fails.
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 60_000);

afterAll(async () => {
  // Kept for the CI log: the example page as a user sees it after a run.
  if (browser !== undefined && example !== undefined) {
    const shown = example;
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    const page = await context.newPage();
    await page.goto(`${shown.pageUrl}?uid=screenshot&device=shot`);
    await page.waitForFunction(() => (globalThis.uidpush as Seen | undefined)?.states.some((s) => s.state === 'connected'));
    for (const text of ['Your order shipped', 'Payment received', 'New message from Bob']) await shown.server.push('screenshot', text);
    await page.waitForFunction(() => globalThis.uidpush.messages.length === 3);
    await mkdir(ARTIFACTS, { recursive: true });
    const path = join(ARTIFACTS, 'client-example.png');
    await page.screenshot({ path });
    console.log(`screenshot of the example page: ${path}`);
    await context.close();
  }
  await browser?.close();
  await example?.close();
}, 60_000);

afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close();
  const seen = problems.splice(0);
  expect(seen, 'console errors on the page').toEqual([]);
});

async function newContext(): Promise<BrowserContext> {
  const context = await running().browser.newContext();
  contexts.push(context);
  await context.addInitScript({ content: COUNT_SOCKETS });
  return context;
}

/** Opens the example page as `uid` (query: device, ttl) and waits until it is connected. */
async function openTab(context: BrowserContext, query: string): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  await page.goto(`${running().example.pageUrl}?${query}`);
  await connectedOn(page);
  return page;
}

const connectedOn = (page: Page, times = 1): Promise<unknown> =>
  page.waitForFunction(
    (n) => ((globalThis.uidpush as Seen | undefined)?.states.filter((s) => s.state === 'connected').length ?? 0) >= n,
    times,
  );

const messagesOn = (page: Page, count: number): Promise<Seen['messages']> =>
  page.waitForFunction((n) => globalThis.uidpush.messages.length >= n, count).then(() => page.evaluate(() => globalThis.uidpush.messages));

const seenOn = (page: Page): Promise<Seen> =>
  page.evaluate(() => {
    const { messages, states, recovered, unrecovered, tokens } = globalThis.uidpush;
    return { messages, states, recovered, unrecovered, tokens };
  });

/** The server side of the next login. */
function nextLogin(): Promise<ConnectionInfo & { terminate(): void }> {
  return new Promise((resolve) => {
    running().example.server.once('login', (conn: ConnectionInfo) => {
      resolve(conn as ConnectionInfo & { terminate(): void });
    });
  });
}

/** Resolves when the server has closed `conn`. */
function closeOf(conn: ConnectionInfo): Promise<void> {
  return new Promise((resolve) => {
    const listener = (event: { connection: ConnectionInfo }): void => {
      if (event.connection !== conn) return;
      server.off('close', listener);
      resolve();
    };
    const { server } = running().example;
    server.on('close', listener);
  });
}

async function push(uid: string, data: unknown): Promise<void> {
  const res = await fetch(`${running().example.apiUrl}/v1/push`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uid, data }),
  });
  expect(res.status).toBe(200);
}

/**
 * After `missed` pushes of 1..missed, one live push: the page must have all of them, in
 * order, each once, at offsets 1..missed+1.
 */
async function expectMissedThenLive(page: Page, uid: string, missed: number): Promise<void> {
  await push(uid, 'live');
  const all = await messagesOn(page, missed + 1);
  expect(all.map((m) => m.data)).toEqual([...Array.from({ length: missed }, (_, i) => i + 1), 'live']);
  expect(all.map((m) => m.offset)).toEqual(Array.from({ length: missed + 1 }, (_, i) => i + 1));
}

describe.skipIf(!hasChromium && !inCi)('uidpush/client in headless Chromium', { timeout: 60_000 }, () => {
  it('delivers a push to both tabs of one uid, and to the other tab once one is closed', async () => {
    const context = await newContext();
    const login = nextLogin();
    const first = await openTab(context, 'uid=ann&device=tab1');
    const firstConn = await login;
    const second = await openTab(context, 'uid=ann&device=tab2');
    expect(await running().example.server.connectionsOf('ann')).toBe(2);
    await push('ann', 'to both');
    expect((await messagesOn(first, 1)).map((m) => m.data)).toEqual(['to both']);
    expect((await messagesOn(second, 1)).map((m) => m.data)).toEqual(['to both']);
    const gone = closeOf(firstConn);
    await first.close();
    await gone;
    expect(await running().example.server.connectionsOf('ann')).toBe(1);
    await push('ann', 'still here');
    expect((await messagesOn(second, 2)).map((m) => m.data)).toEqual(['to both', 'still here']);
  });

  it('reconnects after the server kills its TCP connection and has all 50 pushes made meanwhile, in order, once, then live ones', async () => {
    const context = await newContext();
    const login = nextLogin();
    const page = await openTab(context, 'uid=ben&device=laptop');
    const conn = await login;
    conn.terminate();
    for (let i = 1; i <= 50; i++) await push('ben', i);
    await connectedOn(page, 2);
    await messagesOn(page, 50);
    await expectMissedThenLive(page, 'ben', 50);
    const seen = await seenOn(page);
    expect(seen.states.map((s) => s.state)).toEqual(['connecting', 'connected', 'disconnected', 'connecting', 'connected']);
    expect(seen.states[2]).toMatchObject({ willRetry: true });
  });

  it('refreshes an expiring token through getToken without a disconnect or a lost message', async () => {
    const context = await newContext();
    const page = await openTab(context, 'uid=cat&device=tab&ttl=2');
    const firstExpiry = Date.now() + 2000;
    await push('cat', 'before');
    // Refreshes until the first token is well past its exp (the server checks expiry in
    // one-second buckets): a connection still on it would have been closed 4003.
    for (let tokens = 1; Date.now() < firstExpiry + 1500; tokens++) {
      await page.waitForFunction((n) => globalThis.uidpush.tokens > n, tokens, { timeout: 10_000 });
    }
    await push('cat', 'between');
    const tokens = (await seenOn(page)).tokens;
    await page.waitForFunction((n) => globalThis.uidpush.tokens > n, tokens, { timeout: 10_000 });
    await push('cat', 'after');
    expect((await messagesOn(page, 3)).map((m) => m.data)).toEqual(['before', 'between', 'after']);
    expect((await seenOn(page)).states.map((s) => s.state)).toEqual(['connecting', 'connected']);
  });

  it('stops for good when kicked (4501): no reconnect however long it waits', async () => {
    const context = await newContext();
    // The page's clock is the test's: it runs a minute of timers below, at once.
    await context.clock.install();
    const page = await openTab(context, 'uid=dan&device=tab');
    expect(await page.evaluate(() => globalThis.sockets)).toBe(1);
    await running().example.server.kick('dan');
    await page.waitForFunction(() => globalThis.uidpush.states.some((s) => s.state === 'disconnected'));
    // Past the backoff's cap (30 s): any reconnect the client had scheduled has now run.
    await context.clock.runFor(60_000);
    await page.evaluate("dispatchEvent(new Event('online'))");
    const seen = await seenOn(page);
    expect(seen.states.at(-1)).toMatchObject({ state: 'disconnected', willRetry: false });
    expect(seen.states.at(-1)?.reason).toContain('4501');
    expect(await page.evaluate(() => globalThis.sockets)).toBe(1);
  });

  it('reconnects after a slow-consumer close (4001) and receives again', async () => {
    const context = await newContext();
    const login = nextLogin();
    const page = await openTab(context, 'uid=eve&device=tab');
    (await login).close(4001, 'slow consumer');
    await connectedOn(page, 2);
    const seen = await seenOn(page);
    expect(seen.states[2]).toMatchObject({ state: 'disconnected', reason: '4001 slow consumer', willRetry: true });
    await push('eve', 'back');
    expect((await messagesOn(page, 1)).map((m) => m.data)).toEqual(['back']);
  });

  it('resumes in a reopened tab from the position kept in localStorage', async () => {
    const context = await newContext();
    const login = nextLogin();
    const page = await openTab(context, 'uid=fin');
    const gone = closeOf(await login);
    await push('fin', 'one');
    await messagesOn(page, 1);
    await page.close();
    // Until the server sees the close, a push still reaches the closing tab, which counts
    // it as received (and stores that), so the new tab would rightly not replay it.
    await gone;
    await push('fin', 'two');
    await push('fin', 'three');
    // Same browser profile, no device given: the page's stored device and position resume.
    const again = await openTab(context, 'uid=fin');
    expect((await messagesOn(again, 2)).map((m) => m.data)).toEqual(['two', 'three']);
    expect((await seenOn(again)).recovered).toEqual([2]);
  });
  it('keeps every message across a network cut long enough for liveness to drop the link, with no failed attempt logged', async () => {
    const context = await newContext();
    // Liveness at 300 + 1000 ms: quick to notice the cut, yet a connect under load fits.
    const page = await openTab(context, 'uid=gil&device=tab&ping=300&timeout=1000');
    const before = await seenOn(page);
    const socketsBefore = await page.evaluate(() => globalThis.sockets);
    await context.setOffline(true);
    for (let i = 1; i <= 20; i++) await push('gil', i);
    // Nothing crosses the cut: the client's own liveness check notices.
    await page.waitForFunction((n) => globalThis.uidpush.states.length > n, before.states.length);
    await context.setOffline(false);
    await connectedOn(page, before.states.filter((s) => s.state === 'connected').length + 1);
    await expectMissedThenLive(page, 'gil', 20);
    const after = (await seenOn(page)).states.slice(before.states.length);
    // While the browser said offline it made no attempt: one socket more, once online.
    expect(after).toEqual([
      { state: 'disconnected', reason: '1006 liveness timeout', willRetry: true },
      { state: 'connecting', willRetry: true },
      { state: 'connected', willRetry: true },
    ]);
    expect(await page.evaluate(() => globalThis.sockets)).toBe(socketsBefore + 1);
  });
});

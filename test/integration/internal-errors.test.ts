import { afterEach, describe, expect, it } from 'vitest';
import { Hub, type Recipient } from '../../src/delivery/hub.js';
import { MemoryCluster, type Logger, type ServerOptions, type UidpushServer } from '../../src/index.js';
import { testBed, type TestClient } from '../helpers/clients.js';
import { innerClient } from '../helpers/inner.js';
import { hs256, SECRET } from '../helpers/tokens.js';

// Issue 9, item 1: no exception while handling one connection's frame, one API request or
// one inner-port line may end the process. Each test makes a handler throw for real and
// checks the answer, the metric, the log and a bystander.

interface Logged {
  msg: string;
  fields: Record<string, unknown>;
}

const bed = testBed();
let errors: Logged[] = [];
/** Called after each error line is kept, to wake a test waiting for one. */
let onError: (() => void) | undefined;

// The hub is no longer reachable from the server: a bug is injected into every Hub for
// the test's duration, and each injection is undone after it.
const restores: (() => void)[] = [];
function inject<K extends 'write' | 'broadcast' | 'sendToUid' | 'sendToUids'>(method: K, make: (original: Hub[K]) => Hub[K]): void {
  const proto = Hub.prototype as Hub;
  const original = proto[method];
  proto[method] = make(original);
  restores.push(() => {
    proto[method] = original;
  });
}

afterEach(async () => {
  for (const restore of restores.splice(0).reverse()) restore();
  await bed.cleanup();
});

async function setup(options: ServerOptions = {}): Promise<UidpushServer> {
  errors = [];
  onError = undefined;
  const logger: Logger = {
    debug() {},
    info() {},
    warn() {},
    error(fields: object, msg?: string) {
      errors.push({ msg: msg ?? '', fields: fields as Record<string, unknown> });
      onError?.();
    },
  };
  return (await bed.setup({ ...options, logger })).server;
}
const seed = (uid: string): Promise<TestClient> => bed.client(bed.started().url, uid);
async function v1(uid: string): Promise<{ c: TestClient; id: number }> {
  const c = await bed.v1(bed.started().url, uid);
  return { c, id: c.welcome?.connectionId as number };
}
async function internalErrors(server: UidpushServer, where: string): Promise<number> {
  const metric = await server.metrics.registry.getSingleMetric('uidpush_internal_errors_total')?.get();
  return metric?.values.find((v) => v.labels.where === where)?.value ?? Number.NaN;
}
function api(path: string, body?: string): Promise<Response> {
  const url = `http://127.0.0.1:${bed.started().server.address().api?.port ?? 0}${path}`;
  return fetch(url, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body });
}

describe('last-resort guard on WebSocket connections', () => {
  it('answers internal when a message listener of the program throws, in both protocols, and serves everyone else', async () => {
    const server = await setup();
    server.on('message', ({ from }) => {
      if (from.startsWith('bad')) throw new Error('listener bug');
    });
    expect(await internalErrors(server, 'ws')).toBe(0);
    const bystander = await seed('bystander');
    const badSeed = await seed('bad-seed');
    const { c: badV1 } = await v1('bad-v1');
    badSeed.send('bystander:from seed');
    expect(await bystander.next()).toBe('from seed'); // delivered before the listener ran
    expect(await badSeed.next()).toBe('error: internal internal error');
    badV1.sendJson({ type: 'send', id: 9, to: 'bystander', data: 'from v1' });
    expect(await bystander.next()).toBe('from v1');
    expect(await badV1.nextJson()).toEqual({ type: 'error', code: 'internal', message: 'internal error', id: 9 });
    expect(await internalErrors(server, 'ws')).toBe(2);
    expect(errors.map((e) => e.fields.uid)).toEqual(['bad-seed', 'bad-v1']);
    expect(errors[0]?.fields.conn).toEqual(expect.any(Number));
    expect((errors[0]?.fields.err as Error).message).toBe('listener bug');
    // Both connections stay open and usable; the process and every other client carry on.
    const good = await seed('good');
    good.send('bad-seed:still here');
    expect(await badSeed.next()).toBe('still here');
    badV1.sendJson({ type: 'ping', id: 10 });
    expect(await badV1.nextJson()).toEqual({ type: 'pong', id: 10 });
    good.send('bystander:and you');
    expect(await bystander.next()).toBe('and you');
  });

  it('answers internal when the listener throws on a cluster answer that comes later (a promise callback)', async () => {
    const server = await setup({ broker: new MemoryCluster().createBroker() });
    server.on('message', ({ from }) => {
      if (from === 'bad') throw new Error('listener bug');
    });
    const bystander = await seed('bystander');
    const { c: bad } = await v1('bad');
    // With an id, the ack waits for the cluster's count: the listener runs in a promise callback.
    bad.sendJson({ type: 'send', id: 'later', to: 'bystander', data: 'x' });
    expect(await bystander.next()).toBe('x');
    expect(await bad.nextJson()).toEqual({ type: 'error', code: 'internal', message: 'internal error', id: 'later' });
    expect(await internalErrors(server, 'ws')).toBe(1);
    expect(errors[0]?.msg).toBe('answering a client message failed; answered internal');
  });

  it('closes only that connection with 1011 when even the internal answer cannot be written', async () => {
    const server = await setup();
    const bystander = await seed('bystander');
    const { c: victim, id: victimId } = await v1('victim');
    inject(
      'write',
      (write) =>
        function (this: Hub, conn, frame) {
          if ((conn as Recipient & { id?: number }).id === victimId) throw new Error('write bug');
          return write.call(this, conn, frame);
        },
    );
    victim.sendJson({ type: 'ping', id: 1 });
    expect(await victim.closed()).toBe(1011);
    expect(victim.closeReason).toBe('internal error');
    expect(await internalErrors(server, 'ws')).toBe(1);
    expect(errors.map((e) => e.msg)).toEqual([
      'handling a client message failed; answered internal',
      'answering internal failed; closing the connection with 1011',
    ]);
    expect((await server.push('bystander', 'unaffected')).connections).toBe(1);
    expect(await bystander.next()).toBe('unaffected');
  });

  it('answers internal, with no unhandled rejection, when a login listener throws after a token check', async () => {
    const server = await setup({ jwtSecret: SECRET });
    server.on('login', (_conn, uid) => {
      if (uid.startsWith('bad')) throw new Error('login listener bug');
    });
    const viaFrame = await bed.v1(bed.started().url);
    viaFrame.sendJson({ type: 'auth', id: 'a', token: await hs256({ sub: 'bad-frame' }) });
    expect(await viaFrame.nextJson()).toMatchObject({ type: 'welcome', uid: 'bad-frame', id: 'a' });
    expect(await viaFrame.nextJson()).toEqual({ type: 'error', code: 'internal', message: 'internal error', id: 'a' });
    // The handshake token is checked in a promise too.
    const viaHandshake = await bed.client(`${bed.started().url}/?token=${await hs256({ sub: 'bad-handshake' })}`);
    expect(await viaHandshake.next()).toBe('login success, your uid is bad-handshake');
    expect(await viaHandshake.next()).toBe('error: internal internal error');
    expect(await internalErrors(server, 'ws')).toBe(2);
    // Logged in all the same: the listener ran after the binding.
    expect((await server.push('bad-frame', 'hi')).connections).toBe(1);
    expect(await viaFrame.nextJson()).toMatchObject({ type: 'message', data: 'hi' });
  });

  it('survives a close listener that throws', async () => {
    const server = await setup();
    server.on('close', ({ uid }) => {
      if (uid === 'leaving') throw new Error('close listener bug');
    });
    const bystander = await seed('bystander');
    const leaving = await seed('leaving');
    const logged = new Promise<void>((resolve) => {
      onError = () => {
        if (errors.length >= 1) resolve();
      };
    });
    leaving.close();
    await logged;
    expect(errors).toHaveLength(1);
    expect(errors[0]?.msg).toBe('reporting a close failed; answered internal');
    expect(await internalErrors(server, 'ws')).toBe(1);
    expect(server.local.isOnline('leaving')).toBe(false);
    const other = await seed('other');
    other.send('bystander:after the close');
    expect(await bystander.next()).toBe('after the close');
  });
});

describe('last-resort guard on the server API', () => {
  it('answers 500 internal when a route throws, logs the route, counts it, and serves the next request', async () => {
    await setup();
    const bystander = await seed('bystander');
    inject('broadcast', () => () => {
      throw new Error('broadcast bug');
    });
    const res = await api('/v1/broadcast', '{"data":"x"}');
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: { code: 'internal', message: 'internal error' } });
    expect(errors).toHaveLength(1);
    expect(errors[0]?.fields).toMatchObject({ method: 'POST', route: '/v1/broadcast' });
    const metrics = await (await api('/metrics')).text();
    expect(metrics).toContain('uidpush_internal_errors_total{where="api"} 1');
    expect(metrics).toContain('uidpush_internal_errors_total{where="ws"} 0');
    const push = await api('/v1/push', '{"uid":"bystander","data":"next"}');
    expect(push.status).toBe(200);
    expect(await bystander.next()).toBe('next');
  });
});

describe('last-resort guard on the inner text port', () => {
  it('answers error internal for a line whose handling throws, and handles the next line', async () => {
    const server = await setup({ innerPort: 0 });
    const bystander = await seed('bystander');
    // A push to one uid takes sendToUid, to several sendToUids: both get the bug.
    inject(
      'sendToUid',
      (sendToUid) =>
        function (this: Hub, uid, data, from) {
          if (uid === 'bad') throw new Error('push bug');
          return sendToUid.call(this, uid, data, from);
        },
    );
    inject(
      'sendToUids',
      (sendToUids) =>
        function (this: Hub, uids, data, from) {
          const list = [...uids];
          if (list.includes('bad')) throw new Error('push bug');
          return sendToUids.call(this, list, data, from);
        },
    );
    const port = bed.track(await innerClient(server.address().inner?.port ?? 0));
    port.send('{"uid":"bad"}\n{"uid":"bystander","n":1}\n');
    expect(await port.answer()).toBe('error internal');
    expect(await port.answer()).toBe('ok');
    expect(await bystander.next()).toBe('{"uid":"bystander","n":1}');
    expect(await internalErrors(server, 'inner')).toBe(1);
    expect(errors[0]?.msg).toBe('inner text port: handling a line failed; answered internal');
  });
});

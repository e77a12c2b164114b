import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectV1, eventually, type TestClient } from '../helpers/clients.js';
import type { ClusterFactory, ContractNode } from './broker-contract.js';

/** What every topology runs the inbox with, besides the contract's group caps. */
export const INBOX_OPTIONS = { inbox: true };

type Json = Record<string, unknown>;

/**
 * The per-user inbox (docs/delivery.md) in one topology: what a device that drops gets
 * back, new and quiet devices, receipts, `latest:<key>` and idempotent retries, wherever
 * the pushes are sent and the device reconnects.
 *
 * @param start - starts the nodes of a fresh cluster with these extra server options.
 */
export function inboxContract(name: string, factory: ClusterFactory, start: (options: Json) => Promise<ContractNode[]>): void {
  describe(`inbox contract: ${name}`, () => {
    let nodes: ContractNode[] = [];
    const clients: TestClient[] = [];

    async function cluster(options: Json = {}): Promise<void> {
      await factory.reset?.();
      nodes = await start({ ...INBOX_OPTIONS, ...options });
    }
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
      nodes = [];
    });

    const at = (i: number): ContractNode => {
      const n = nodes[Math.min(i, nodes.length - 1)];
      if (n === undefined) throw new Error(`no node ${String(i)}`);
      return n;
    };
    const last = (): number => nodes.length - 1;

    async function api(node: number, method: string, path: string, body?: unknown): Promise<Json> {
      const res = await fetch(`${at(node).api}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return (await res.json()) as Json;
    }
    const push = (node: number, body: Json): Promise<Json> => api(node, 'POST', '/v1/push', body);

    /** A v1 device of `uid` on `node`, authenticated with `auth`'s extra fields; its welcome. */
    async function device(node: number, uid: string, auth: Json = {}): Promise<{ client: TestClient; welcome: Json }> {
      const client = await connectV1(at(node).url);
      clients.push(client);
      client.sendJson({ type: 'auth', uid, ...auth });
      const welcome = await client.nextJson();
      expect(welcome.type, JSON.stringify(welcome)).toBe('welcome');
      return { client, welcome };
    }

    /** Ends the device's TCP connection without a WebSocket close, and waits until its node has recorded it offline. */
    async function killTcp(node: number, uid: string, client: TestClient): Promise<void> {
      const recorded = at(node).offline(uid);
      (client.ws as unknown as { _socket: Socket })._socket.destroy();
      await recorded;
    }

    /** The next `n` messages of `client`, parsed. */
    async function messages(client: TestClient, n: number): Promise<Json[]> {
      const got: Json[] = [];
      for (let i = 0; i < n; i++) got.push(await client.nextJson(5000));
      return got;
    }

    /** Acks every retained message `client` receives, as the SDK would. */
    function autoAck(client: TestClient): void {
      client.ws.on('message', (data: Buffer) => {
        const frame = JSON.parse(data.toString('utf8')) as Json;
        if (frame.type === 'message' && typeof frame.offset === 'number') client.sendJson({ type: 'ack', upTo: frame.offset });
      });
    }

    it('replays exactly the 100 pushes a device missed while its TCP was dead, in order, once, then live ones, on another node', async () => {
      await cluster();
      const { client: phone, welcome } = await device(0, 'dropper', { device: 'phone' });
      expect(welcome).toMatchObject({ device: 'phone', recovered: true, missed: 0, inbox: { offset: 0 } });
      const epoch = (welcome.inbox as Json).epoch as string;
      await push(last(), { uid: 'dropper', data: 'first' });
      const [first] = await messages(phone, 1);
      expect(first).toMatchObject({ type: 'message', offset: 1, epoch, data: 'first' });

      await killTcp(0, 'dropper', phone);
      for (let i = 0; i < 100; i++) {
        const answer = await push(i % nodes.length, { uid: 'dropper', data: { n: i } });
        expect(answer).toMatchObject({ online: 0, offset: i + 2, epoch });
      }

      const again = await device(last(), 'dropper', { device: 'phone', since: { epoch, offset: 1 } });
      expect(again.welcome).toMatchObject({ device: 'phone', recovered: true, missed: 100, inbox: { epoch, offset: 101 } });
      const replayed = await messages(again.client, 100);
      expect(replayed.map((m) => m.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
      expect(replayed.map((m) => (m.data as Json).n)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      await push(0, { uid: 'dropper', data: 'live' });
      const [live] = await messages(again.client, 1);
      expect(live).toMatchObject({ offset: 102, data: 'live' });
    });

    it('holds a push accepted while the replay runs and writes it once, after the replayed ones', async () => {
      await cluster();
      const { client: tab, welcome } = await device(0, 'racer', { device: 'tab' });
      const epoch = (welcome.inbox as Json).epoch as string;
      await killTcp(0, 'racer', tab);
      for (let i = 0; i < 50; i++) await push(i % nodes.length, { uid: 'racer', data: i });
      const client = await connectV1(at(last()).url);
      clients.push(client);
      client.sendJson({ type: 'auth', uid: 'racer', device: 'tab', since: { epoch, offset: 0 } });
      // Sent while the login is being answered: each is either replayed or live, never both.
      const during = Promise.all([50, 51, 52].map((n) => push(n % nodes.length, { uid: 'racer', data: n })));
      const welcomeAgain = await client.nextJson();
      expect(welcomeAgain).toMatchObject({ type: 'welcome', recovered: true });
      await during;
      const got = await messages(client, 53);
      expect(got.map((m) => m.offset)).toEqual(Array.from({ length: 53 }, (_, i) => i + 1));
      expect(new Set(got.map((m) => m.data)).size).toBe(53);
    });

    it('tells a brand-new device it missed nothing, and starts it at the top', async () => {
      await cluster();
      await push(0, { uid: 'newbie', data: 'before the device existed' });
      const { welcome } = await device(last(), 'newbie', { device: 'laptop' });
      expect(welcome).toMatchObject({ device: 'laptop', recovered: true, missed: 0, cursor: 1, inbox: { offset: 1 } });
      const generated = await device(0, 'newbie');
      expect(generated.welcome.device).toMatch(/^[A-Za-z0-9_-]{16}$/);
      expect(generated.welcome).toMatchObject({ recovered: true, missed: 0 });
    });

    it('recovers a quiet device with nothing missed after its data expired, and refuses recovery with expired when missed data is gone', async () => {
      await cluster({ inboxTtl: 500 });
      const { client: quiet, welcome } = await device(0, 'quiet', { device: 'watch' });
      const epoch = (welcome.inbox as Json).epoch as string;
      await push(last(), { uid: 'quiet', data: 'seen' });
      await messages(quiet, 1);
      await killTcp(0, 'quiet', quiet);
      // The data TTL passing is the clock's doing: wait until the inbox shows it gone.
      await eventually(async () => {
        expect(((await api(0, 'GET', '/v1/users/quiet/inbox')).retained as Json).count).toBe(0);
      });
      const back = await device(last(), 'quiet', { device: 'watch', since: { epoch, offset: 1 } });
      expect(back.welcome).toMatchObject({ recovered: true, missed: 0, inbox: { epoch, offset: 1 } });

      await killTcp(last(), 'quiet', back.client);
      await push(0, { uid: 'quiet', data: 'missed, then expired' });
      await eventually(async () => {
        expect(((await api(0, 'GET', '/v1/users/quiet/inbox')).retained as Json).count).toBe(0);
      });
      const late = await device(0, 'quiet', { device: 'watch', since: { epoch, offset: 1 } });
      expect(late.welcome).toMatchObject({ recovered: false, reason: 'expired', missed: 0, inbox: { epoch, offset: 2 } });
    });

    it('answers a foreign epoch with recovered false and epoch_changed', async () => {
      await cluster();
      await push(0, { uid: 'moved', data: 'x' });
      const { welcome } = await device(last(), 'moved', { device: 'd', since: { epoch: 'notthisone12', offset: 0 } });
      expect(welcome).toMatchObject({ recovered: false, reason: 'epoch_changed', missed: 0, inbox: { offset: 1 } });
    });

    it('returns the devices that acked to a push that awaits them, and undelivered when none did in time', async () => {
      await cluster();
      const { client: phone } = await device(0, 'receipts', { device: 'phone' });
      autoAck(phone);
      const { client: tablet } = await device(last(), 'receipts', { device: 'tablet' });
      autoAck(tablet);
      const both = await push(last(), { uid: 'receipts', data: 'did you get it?', await: { acked: 2, timeoutMs: 10_000 } });
      expect(both).toMatchObject({ online: 1, connections: 2, undelivered: false });
      expect([...(both.acked as string[])].sort()).toEqual(['phone', 'tablet']);

      const { client: silent } = await device(0, 'mute', { device: 'deaf' });
      const none = await push(last(), { uid: 'mute', data: 'anyone?', await: { acked: 1, timeoutMs: 300 } });
      expect(none).toMatchObject({ acked: [], undelivered: true, offset: 1 });
      expect(await silent.nextJson()).toMatchObject({ offset: 1, data: 'anyone?' });

      const info = await api(0, 'GET', '/v1/users/receipts/inbox');
      expect(info).toMatchObject({ uid: 'receipts', top: 1 });
      expect((info.devices as Json[]).map((d) => [d.device, d.cursor])).toEqual([
        ['phone', 1],
        ['tablet', 1],
      ]);
    });

    it('replays only the newest value of each latest:<key>, in offset order with the rest', async () => {
      await cluster();
      const { client, welcome } = await device(0, 'scores', { device: 'tv' });
      const epoch = (welcome.inbox as Json).epoch as string;
      await killTcp(0, 'scores', client);
      await push(0, { uid: 'scores', data: 'score 1', delivery: 'latest:score' });
      await push(last(), { uid: 'scores', data: 'kept', delivery: 'durable' });
      await push(0, { uid: 'scores', data: 'score 2', delivery: 'latest:score' });
      await push(last(), { uid: 'scores', data: 'weather', delivery: 'latest:weather' });
      await push(0, { uid: 'scores', data: 'score 3', delivery: 'latest:score' });
      await push(0, { uid: 'scores', data: 'not kept', delivery: 'ephemeral' });
      const back = await device(last(), 'scores', { device: 'tv', since: { epoch, offset: 0 } });
      expect(back.welcome).toMatchObject({ recovered: true, missed: 3, inbox: { offset: 5 } });
      const got = await messages(back.client, 3);
      expect(got.map((m) => [m.offset, m.data, m.key])).toEqual([
        [2, 'kept', undefined],
        [4, 'weather', 'weather'],
        [5, 'score 3', 'score'],
      ]);
    });

    it('retains nothing new for an idempotent retry and answers the first position', async () => {
      await cluster();
      const first = await push(0, { uid: 'retry', data: 'once', idempotencyKey: 'order-17' });
      const retry = await push(last(), { uid: 'retry', data: 'once', idempotencyKey: 'order-17' });
      expect(first).toMatchObject({ offset: 1 });
      expect(first.duplicate).toBeUndefined();
      expect(retry).toMatchObject({ offset: 1, epoch: first.epoch, duplicate: true });
      const other = await push(0, { uid: 'retry', data: 'twice', idempotencyKey: 'order-18' });
      expect(other).toMatchObject({ offset: 2 });
      expect(await api(last(), 'GET', '/v1/users/retry/inbox')).toMatchObject({ top: 2, retained: { count: 2 } });
    });
  });
}

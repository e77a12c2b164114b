import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/index.js';
import { connect, connectV1, offlineOf, startServer, type TestClient } from '../helpers/clients.js';
import { inboxContract } from './inbox-contract.js';

/** One node of a cluster under test, wherever it runs. */
export interface ContractNode {
  /** Its WebSocket URL. */
  url: string;
  /** Its server API base URL. */
  api: string;
  /** Pushes from the node itself, without the API (only for nodes in this process). */
  sendToUid?(uid: string, data: string): Promise<number>;
  /** Settles at the node's next `offline` event for `uid` (its close recorded in presence). */
  offline(uid: string): Promise<void>;
  stop(): Promise<void>;
}

/** Makes the nodes of one cluster: `broker()` for nodes in this process, or `start()`. */
export interface ClusterFactory {
  /** How many nodes the suite starts. */
  nodes: number;
  /** A broker for one more in-process node of a fresh cluster (`undefined`: embedded). */
  broker?(): Broker | undefined;
  /** Starts `nodes` nodes of a fresh cluster elsewhere (other processes), with extra server options. */
  start?(options?: Record<string, unknown>): Promise<ContractNode[]>;
  /** Called before each test: a new, empty cluster. */
  reset?(): Promise<void> | void;
  /** Turns the broker off and on, if it can (for the outage case). */
  setDown?(down: boolean): Promise<void> | void;
}

/**
 * Group caps of every node under the contract: small, so the cap case reaches them in a
 * few calls; above what the other cases need (a group of one member per node).
 */
export const CONTRACT_LIMITS = { maxGroupsPerUid: 4, maxMembersPerGroup: 4 };

async function inProcess(broker: Broker | undefined, extra: Record<string, unknown> = {}): Promise<ContractNode> {
  const started = await startServer(broker === undefined ? { ...CONTRACT_LIMITS, ...extra } : { broker, ...CONTRACT_LIMITS, ...extra });
  return {
    url: started.url,
    api: `http://127.0.0.1:${started.server.address().api?.port ?? 0}`,
    sendToUid: async (uid, data) => (await started.server.push(uid, data)).connections,
    offline: (uid) => offlineOf(started.server, uid),
    stop: () => started.stop(),
  };
}

/**
 * The behaviour every broker must give: the same operations, wherever the uid is
 * connected. Run against embedded (1 node), the in-process bus (3 nodes), node:cluster
 * workers and Redis.
 */
export function brokerContract(name: string, factory: ClusterFactory): void {
  inboxContract(name, factory, async (options) => {
    if (factory.start !== undefined) return factory.start(options);
    const started: ContractNode[] = [];
    for (let i = 0; i < factory.nodes; i++) started.push(await inProcess(factory.broker?.(), options));
    return started;
  });
  describe(`broker contract: ${name}`, () => {
    let nodes: ContractNode[] = [];
    let apis: string[] = [];
    const clients: TestClient[] = [];
    const last = (): number => nodes.length - 1;
    const node = (i: number): ContractNode => {
      const n = nodes[i];
      if (n === undefined) throw new Error(`no node ${String(i)}`);
      return n;
    };

    beforeEach(async () => {
      await factory.reset?.();
      nodes = [];
      if (factory.start !== undefined) {
        nodes = await factory.start();
      } else {
        for (let i = 0; i < factory.nodes; i++) nodes.push(await inProcess(factory.broker?.()));
      }
      apis = nodes.map((n) => n.api);
    });
    afterEach(async () => {
      for (const c of clients.splice(0)) c.close();
      await Promise.all(nodes.map((n) => n.stop()));
    });

    async function seed(node: number, uid: string): Promise<TestClient> {
      const c = await connect(nodes[node]?.url ?? '');
      clients.push(c);
      return c.login(uid);
    }
    async function v1(node: number, uid: string): Promise<TestClient> {
      const c = await connectV1(nodes[node]?.url ?? '');
      clients.push(c);
      c.sendJson({ type: 'auth', uid });
      await c.nextJson();
      return c;
    }
    async function api(node: number, method: string, path: string, body?: unknown): Promise<unknown> {
      const res = await fetch(`${apis[node] ?? ''}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return res.json();
    }
    /**
     * Checks, at once, that every node sees `uid` with `n` connections: a login reply is sent
     * only once the connection is counted in every node's answer.
     */
    async function present(uid: string, n: number): Promise<void> {
      for (let i = 0; i < nodes.length; i++) {
        expect(((await api(i, 'GET', `/v1/users/${uid}`)) as { connections: number }).connections, `node ${i} counts ${uid}`).toBe(n);
      }
    }
    /**
     * Closes `close` (connections of `uid` on the nodes `on`), waits for each of those nodes
     * to record that it holds none, then checks at once that every node counts `left`.
     */
    async function gone(uid: string, on: number[], left: number, close: () => void): Promise<void> {
      const recorded = on.map((i) => node(i).offline(uid));
      close();
      await Promise.all(recorded);
      await present(uid, left);
    }

    it('delivers a push sent through any node to the uid on node 0', async () => {
      const alice = await seed(0, 'alice');
      await present('alice', 1);
      for (let i = 0; i < nodes.length; i++) {
        expect(await api(i, 'POST', '/v1/push', { uid: 'alice', data: `via ${i}` })).toEqual({ online: 1, connections: 1 });
        expect(await alice.next()).toBe(`via ${i}`);
      }
      await alice.nothingFor(100); // exactly once: a node ignores its own messages
    });

    it('reaches a uid through any node as soon as its login reply is sent, with no wait', async () => {
      // Each login is a uid's first connection on its node; the pushes follow the reply at
      // once, through every node, so a node still subscribing would lose them.
      for (let round = 0; round < 5; round++) {
        for (let at = 0; at < nodes.length; at++) {
          const uid = `fresh-${round}-${at}`;
          const c = round % 2 === 0 ? await seed(at, uid) : await v1(at, uid);
          for (let via = 0; via < nodes.length; via++) {
            expect(await api(via, 'POST', '/v1/push', { uid, data: `${uid} via ${via}` })).toEqual({ online: 1, connections: 1 });
          }
          const got: string[] = [];
          for (let via = 0; via < nodes.length; via++) got.push(round % 2 === 0 ? await c.next() : ((await c.nextJson()).data as string));
          // Each exactly once; order is kept per sender, not across nodes.
          expect(got.sort()).toEqual(nodes.map((_, via) => `${uid} via ${via}`).sort());
        }
      }
    });

    it('reaches a member through any node as soon as its join returns, with no wait', async () => {
      // The member holds a connection on two nodes (where there are two); the join goes
      // through a third, the publishes through every node right after it returns.
      for (let round = 0; round < 5; round++) {
        const uid = `member-${round}`;
        const group = `room-${round}`;
        const here = await seed(0, uid);
        const there = nodes.length > 1 ? await seed(last(), uid) : undefined;
        if (round % 2 === 0) {
          expect(await api(round % nodes.length, 'PUT', `/v1/groups/${group}/members/${uid}`)).toMatchObject({ added: true });
        } else {
          // A client's own join: its ack is the moment it may count on the group.
          const self = await v1(0, uid);
          self.sendJson({ type: 'join', id: 7, group });
          expect(await self.nextJson()).toMatchObject({ type: 'ack', id: 7 });
          for (let via = 0; via < nodes.length; via++) {
            expect(await api(via, 'POST', `/v1/groups/${group}/push`, { data: `${group} via ${via}` })).toMatchObject({ online: 1 });
          }
          await expectEach(() => self.nextJson().then((f) => f.data as string), group);
          for (const c of [here, there]) if (c) await expectEach(() => c.next(), group);
          continue;
        }
        for (let via = 0; via < nodes.length; via++) {
          expect(await api(via, 'POST', `/v1/groups/${group}/push`, { data: `${group} via ${via}` })).toMatchObject({ online: 1 });
        }
        for (const c of [here, there]) if (c) await expectEach(() => c.next(), group);
      }
    });

    /** Reads one message per node, `<name> via <node>`: each exactly once, in any order across nodes. */
    async function expectEach(read: () => Promise<string>, name: string): Promise<void> {
      const got: string[] = [];
      for (let i = 0; i < nodes.length; i++) got.push(await read());
      expect(got.sort()).toEqual(nodes.map((_, via) => `${name} via ${via}`).sort());
    }

    it('delivers client-to-client across nodes, in both protocols', async () => {
      const sam = await seed(0, 'sam');
      const jo = await v1(last(), 'jo');
      await present('jo', 1);
      await present('sam', 1);
      sam.send('jo:hi jo');
      expect(await jo.nextJson()).toMatchObject({ scope: 'uid', from: 'sam', to: 'jo', data: 'hi jo' });
      jo.sendJson({ type: 'send', id: 1, to: 'sam', data: { x: 1 } });
      expect(await sam.next()).toBe('{"x":1}');
      expect(await jo.nextJson()).toEqual({ type: 'ack', id: 1, result: { online: true, connections: 1 } });
    });

    it('keeps the order of a burst of pushes from one sender across nodes', async () => {
      const to = await seed(last(), 'burst-to');
      const from = await seed(0, 'burst-from');
      await present('burst-to', 1);
      // Sent in one event-loop turn (within the default burst of 200): brokers that batch a
      // turn's messages must keep their order.
      for (let i = 0; i < 150; i++) from.send(`burst-to:${String(i)}`);
      for (let i = 0; i < 150; i++) expect(await to.next()).toBe(String(i));
      await to.nothingFor(50);
    });

    it('reaches a uid connected to two nodes on both', async () => {
      const a = await seed(0, 'two');
      const b = await seed(last(), 'two');
      await present('two', 2);
      expect(await api(0, 'POST', '/v1/push', { uid: 'two', data: 'both' })).toEqual({ online: 1, connections: 2 });
      expect(await a.next()).toBe('both');
      expect(await b.next()).toBe('both');
    });

    it('broadcasts to every node', async () => {
      const conns = await Promise.all(nodes.map((_, i) => seed(i, `b${i}`)));
      await present(`b${last()}`, 1);
      expect(await api(0, 'POST', '/v1/broadcast', { data: 'all nodes' })).toEqual({ connections: nodes.length });
      for (const c of conns) expect(await c.next()).toBe('all nodes');
      for (const c of conns) await c.nothingFor(30);
    });

    it('pushes to a group whose members are on different nodes, membership set on any node', async () => {
      const members = await Promise.all(nodes.map((_, i) => v1(i, `m${i}`)));
      const outsider = await seed(0, 'outsider');
      for (let i = 0; i < nodes.length; i++) await api(last() - i, 'PUT', `/v1/groups/crew/members/m${i}`);
      expect(await api(0, 'GET', '/v1/groups/crew')).toEqual({
        group: 'crew',
        members: nodes.length,
        online: nodes.length,
        connections: nodes.length,
      });
      expect(await api(last(), 'POST', '/v1/groups/crew/push', { data: 'crew only' })).toEqual({
        online: nodes.length,
        connections: nodes.length,
      });
      for (const m of members) expect(await m.nextJson()).toMatchObject({ scope: 'group', to: 'crew', data: 'crew only' });
      await outsider.nothingFor(50);
    });

    it('keeps group membership when the member reconnects to another node', async () => {
      let m = await seed(0, 'mover');
      await api(0, 'PUT', '/v1/groups/club/members/mover');
      await gone('mover', [0], 0, () => {
        m.close();
      });
      m = await seed(last(), 'mover');
      await present('mover', 1);
      await api(0, 'POST', '/v1/groups/club/push', { data: 'welcome back' });
      expect(await m.next()).toBe('welcome back');
    });

    it('kicks a uid from any node', async () => {
      const a = await seed(0, 'kicked');
      const b = await seed(last(), 'kicked');
      await present('kicked', 2);
      const recorded = [node(0).offline('kicked'), node(last()).offline('kicked')];
      expect(await api(last(), 'POST', '/v1/users/kicked/kick', { reason: 'bye' })).toEqual({ uid: 'kicked', kicked: 2 });
      expect(await a.closed()).toBe(4501);
      expect(await b.closed()).toBe(4501);
      await Promise.all(recorded);
      await present('kicked', 0);
    });

    it('agrees on presence, counts and the uid list on every node', async () => {
      await seed(0, 'p1');
      await seed(last(), 'p2');
      await seed(last(), 'p2');
      await present('p2', 2);
      await present('p1', 1);
      for (let i = 0; i < nodes.length; i++) {
        expect(await api(i, 'GET', '/v1/stats')).toMatchObject({ onlineUids: 2, connections: 3 });
        expect(((await api(i, 'GET', '/v1/users')) as { uids: string[] }).uids.sort()).toEqual(['p1', 'p2']);
      }
    });

    it('pages the uid list on every node: each online uid once, in byte order in a cluster', async () => {
      // UTF-16 and UTF-8 order disagree on the last two: a cursor must follow one order.
      const names = ['a1', 'b2', 'c3', 'd4', 'e5', 'zo\u00eb', '\u65e5\u672c', '\u{1F600}', '\uFFFD-x'];
      const held = new Map<string, TestClient>();
      for (const [i, uid] of names.entries()) held.set(uid, await seed(i % nodes.length, uid));
      await seed(0, 'shared');
      await seed(last(), 'shared');
      await present('shared', 2);
      for (const uid of names) await present(uid, 1);
      const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
      const expected = [...names, 'shared'].sort(byBytes);

      async function walk(node: number): Promise<string[]> {
        const seen: string[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 20; pages++) {
          const query: string = cursor === null ? '' : `&cursor=${cursor}`;
          const got = (await api(node, 'GET', `/v1/users?limit=2${query}`)) as { uids: string[]; nextCursor: string | null };
          expect(got.uids.length).toBeLessThanOrEqual(2);
          seen.push(...got.uids);
          cursor = got.nextCursor;
          if (cursor === null) return seen;
        }
        throw new Error('more pages than uids');
      }
      for (let i = 0; i < nodes.length; i++) {
        const seen = await walk(i);
        if (nodes.length > 1) expect(seen).toEqual(expected);
        else expect([...seen].sort(byBytes)).toEqual(expected);
      }

      await gone('c3', [names.indexOf('c3') % nodes.length], 0, () => {
        held.get('c3')?.close();
      });
      for (let i = 0; i < nodes.length; i++) expect(await walk(i)).not.toContain('c3');
    });

    it('refuses a malformed uid-list cursor with 400 bad_request on every node, and still serves', async () => {
      const bystander = await seed(0, 'pager');
      await present('pager', 1);
      // Not base64url, not canonical base64url (Buffer would skip or round what it cannot
      // read), empty bytes, and bytes that are not UTF-8.
      const forged = ['forged', '%%%', 'a', '_w', 'not-a-cursor', 'x'.repeat(5000)];
      for (let i = 0; i < nodes.length; i++) {
        for (const cursor of forged) {
          const res = await fetch(`${apis[i] ?? ''}/v1/users?cursor=${encodeURIComponent(cursor)}`);
          expect({ node: i, cursor: cursor.slice(0, 20), status: res.status, body: await res.json() }).toMatchObject({
            status: 400,
            body: { error: { code: 'bad_request', message: 'invalid cursor' } },
          });
        }
        expect(((await api(i, 'GET', '/v1/users')) as { uids: string[] }).uids).toEqual(['pager']);
      }
      expect(await api(last(), 'POST', '/v1/push', { uid: 'pager', data: 'still served' })).toEqual({ online: 1, connections: 1 });
      expect(await bystander.next()).toBe('still served');
    });

    it('caps groups per uid and members per group on every node, for the API and v1 joins, and frees them on leave', async () => {
      const call = async (node: number, method: string, path: string): Promise<{ status: number; body: unknown }> => {
        const res = await fetch(`${apis[node] ?? ''}${path}`, { method });
        return { status: res.status, body: await res.json() };
      };
      const limitExceeded = { error: { code: 'limit_exceeded' } };
      const joiner = await v1(last(), 'joiner');
      for (let g = 1; g <= CONTRACT_LIMITS.maxGroupsPerUid; g++) {
        expect(await call(g % nodes.length, 'PUT', `/v1/groups/g${g}/members/joiner`)).toEqual({
          status: 200,
          body: { group: `g${g}`, uid: 'joiner', added: true },
        });
      }
      for (let i = 0; i < nodes.length; i++) {
        expect(await call(i, 'PUT', '/v1/groups/one-too-many/members/joiner')).toMatchObject({ status: 409, body: limitExceeded });
        // A membership it already has is never refused.
        expect(await call(i, 'PUT', '/v1/groups/g1/members/joiner')).toMatchObject({ status: 200, body: { added: false } });
      }
      joiner.sendJson({ type: 'join', id: 7, group: 'by-client' });
      expect(await joiner.nextJson()).toMatchObject({ type: 'error', code: 'limit_exceeded', id: 7 });
      joiner.sendJson({ type: 'leave', id: 8, group: 'g1' });
      expect(await joiner.nextJson()).toEqual({ type: 'ack', id: 8, result: { group: 'g1', left: true } });
      joiner.sendJson({ type: 'join', id: 9, group: 'by-client' });
      expect(await joiner.nextJson()).toEqual({ type: 'ack', id: 9, result: { group: 'by-client', joined: true } });

      // Joins to one group from every node at once: the cap holds exactly.
      const racers = Array.from({ length: 10 }, (_, i) => `racer${i}`);
      const results = await Promise.all(racers.map((uid, i) => call(i % nodes.length, 'PUT', `/v1/groups/crowd/members/${uid}`)));
      expect(results.filter((r) => r.status === 200)).toHaveLength(CONTRACT_LIMITS.maxMembersPerGroup);
      expect(results.filter((r) => r.status === 409)).toHaveLength(racers.length - CONTRACT_LIMITS.maxMembersPerGroup);
      for (let i = 0; i < nodes.length; i++) {
        expect((await call(i, 'GET', '/v1/groups/crowd')).body).toMatchObject({ members: CONTRACT_LIMITS.maxMembersPerGroup });
      }

      // Dropping every membership of a uid frees its slots.
      expect(await call(0, 'DELETE', '/v1/users/joiner/groups')).toEqual({ status: 200, body: { uid: 'joiner', left: 4 } });
      expect(await call(0, 'DELETE', '/v1/users/joiner/groups')).toEqual({ status: 200, body: { uid: 'joiner', left: 0 } });
      expect((await call(last(), 'GET', '/v1/groups/g2')).body).toMatchObject({ members: 0 });
      expect(await call(last(), 'PUT', '/v1/groups/one-too-many/members/joiner')).toMatchObject({ status: 200, body: { added: true } });
      // The connection that was refused is still served.
      expect(await api(0, 'POST', '/v1/push', { uid: 'joiner', data: 'still here' })).toEqual({ online: 1, connections: 1 });
      expect(await joiner.nextJson()).toMatchObject({ type: 'message', data: 'still here' });
    });

    it('forgets a uid on every node once its last connection closes', async () => {
      const c = await seed(last(), 'gone');
      await present('gone', 1);
      await gone('gone', [last()], 0, () => {
        c.close();
      });
    });

    if (factory.setDown !== undefined) {
      it('delivers locally even when the broker publish fails', async () => {
        const local = await seed(0, 'local');
        await present('local', 1);
        await factory.setDown?.(true);
        try {
          expect(await nodes[0]?.sendToUid?.('local', 'x')).toBe(1);
          local.send('local:still here');
          expect(await local.next()).toBe('x');
          expect(await local.next()).toBe('still here');
        } finally {
          await factory.setDown?.(false);
        }
      });
    }
  });
}

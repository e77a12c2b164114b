import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Broker } from '../../src/index.js';

/**
 * The broker contract one level down from the WebSocket one (broker-contract.ts): the
 * {@link Broker} interface itself, driven by the test with no server in front, so a
 * broker's own promises (subscribe in effect, presence written everywhere) are what each
 * case leans on. No case sleeps: it awaits the broker's promises, and shows that something
 * did NOT arrive by publishing a marker afterwards, from the same node, on a channel that
 * is subscribed, and waiting for that.
 */

/** The brokers of one fresh cluster, and how to clean up what closing them leaves. */
export interface BrokerFleet {
  /** Not started: the contract starts each with its own recorder, and closes it. */
  brokers: Broker[];
  /** Called after the brokers are closed (a namespace to drop, processes to end). */
  close?(): Promise<void> | void;
}

/** Makes `nodes` brokers of one new, empty cluster. */
export type BrokerFactory = (nodes: number) => Promise<BrokerFleet> | BrokerFleet;

/** A started broker and what it received, with a way to wait for a message. */
interface Node {
  broker: Broker;
  received: [channel: string, message: string][];
  /** Resolves once a message on `channel` satisfies `match` (one received already counts). */
  next(channel: string, match: (message: string) => boolean): Promise<void>;
  /** Resolves once `count` messages have arrived on `channel`. */
  count(channel: string, count: number): Promise<void>;
}

function on(node: Node, channel: string): string[] {
  return node.received.filter(([c]) => c === channel).map(([, m]) => m);
}

async function startNodes(brokers: Broker[]): Promise<Node[]> {
  return Promise.all(
    brokers.map(async (broker) => {
      const received: [string, string][] = [];
      const waiters = new Set<() => boolean>();
      const wait = (done: () => boolean): Promise<void> =>
        new Promise((resolve) => {
          const check = (): boolean => {
            if (!done()) return false;
            resolve();
            return true;
          };
          if (!check()) waiters.add(check);
        });
      const node: Node = {
        broker,
        received,
        next: (channel, match) => wait(() => on(node, channel).some(match)),
        count: (channel, n) => wait(() => on(node, channel).length >= n),
      };
      await broker.start((channel, message) => {
        received.push([channel, message]);
        for (const check of waiters) if (check()) waiters.delete(check);
      });
      return node;
    }),
  );
}

/** Starts a fresh cluster of `nodes` before each test and closes it after. */
function fleetPerTest(factory: BrokerFactory, nodes: number): () => Node[] {
  let fleet: BrokerFleet | undefined;
  let started: Node[] = [];
  beforeEach(async () => {
    fleet = await factory(nodes);
    try {
      started = await startNodes(fleet.brokers);
    } catch (err) {
      // Not left reconnecting in the background of the next tests.
      await Promise.allSettled(fleet.brokers.map((b) => b.close()));
      throw err;
    }
  });
  afterEach(async () => {
    await Promise.all(started.map((n) => n.broker.close()));
    await fleet?.close?.();
    started = [];
    fleet = undefined;
  });
  return () => started;
}

/** Uids that JavaScript's `sort()` would order differently from code points. */
const PAGED_UIDS = ['b', 'a', 'Z', 'é', 'a1', '\u{FF5E}', '\u{1F600}'];
/** The same, in code-point order (UTF-8 byte order). */
const PAGED_IN_ORDER = ['Z', 'a', 'a1', 'b', 'é', '\u{FF5E}', '\u{1F600}'];

/**
 * The store part of the contract (presence, membership, revocations) on a cluster of
 * `nodes` (1 for a {@link LocalBroker}): every write read back from every node.
 */
export function brokerStoreContract(name: string, factory: BrokerFactory, nodes: number): void {
  describe(`broker stores: ${name} (${String(nodes)} node${nodes === 1 ? '' : 's'})`, () => {
    const fleet = fleetPerTest(factory, nodes);
    /** Node `i` of the fleet, wrapping around: one node plays every part of a cluster of one. */
    const at = (i: number): Broker => {
      const list = fleet();
      const node = list[i % list.length];
      if (node === undefined) throw new Error('no broker started');
      return node.broker;
    };
    const every = (): Broker[] => fleet().map((n) => n.broker);

    describe('presence', () => {
      it('shows a resolved setLocal to every node: connections, holders, totals, connectionTotal, listUids', async () => {
        await Promise.all([at(0).presence.setLocal('alice', 2), at(1).presence.setLocal('alice', 1), at(2).presence.setLocal('bob', 1)]);
        const aliceHolders = [...new Set([at(0).nodeId, at(1).nodeId])].sort();
        // On one node, its later write of alice is its count.
        const alice = nodes === 1 ? 1 : 3;
        for (const broker of every()) {
          expect(await broker.presence.connections(['alice', 'bob', 'nobody'])).toEqual([alice, 1, 0]);
          expect((await broker.presence.holders('alice')).sort()).toEqual(aliceHolders);
          expect(await broker.presence.holders('nobody')).toEqual([]);
          expect(await broker.presence.totals()).toEqual({ onlineUids: 2, connections: alice + 1 });
          expect(await broker.presence.connectionTotal()).toBe(alice + 1);
          expect(await broker.presence.listUids(null, 10)).toEqual({ uids: ['alice', 'bob'], nextCursor: null });
        }
      });

      it('takes a uid offline everywhere once every node that held it wrote 0', async () => {
        await Promise.all([at(0).presence.setLocal('alice', 2), at(1).presence.setLocal('alice', 1), at(2).presence.setLocal('bob', 1)]);
        await at(0).presence.setLocal('alice', 0);
        if (nodes > 1) {
          for (const broker of every()) {
            expect(await broker.presence.connections(['alice'])).toEqual([1]);
            expect(await broker.presence.holders('alice')).toEqual([at(1).nodeId]);
            expect(await broker.presence.totals()).toEqual({ onlineUids: 2, connections: 2 });
          }
        }
        await at(1).presence.setLocal('alice', 0);
        for (const broker of every()) {
          expect(await broker.presence.connections(['alice', 'bob'])).toEqual([0, 1]);
          expect(await broker.presence.holders('alice')).toEqual([]);
          expect(await broker.presence.totals()).toEqual({ onlineUids: 1, connections: 1 });
          expect(await broker.presence.connectionTotal()).toBe(1);
          expect((await broker.presence.listUids(null, 10)).uids).toEqual(['bob']);
        }
      });

      it('pages listUids in code-point order on every node, never repeating or skipping a uid', async () => {
        // Spread over the nodes, and 'a' on two of them: it is one uid, listed once.
        await Promise.all([...PAGED_UIDS.map((uid, i) => at(i).presence.setLocal(uid, 1)), at(1).presence.setLocal('a', 1)]);
        for (const broker of every()) {
          for (const limit of [1, 2, 3, 10]) {
            const listed: string[] = [];
            let cursor: string | null = null;
            // Bounded: a cursor that never ends the listing fails the test, not the run.
            for (let page = 0; page <= PAGED_UIDS.length; page++) {
              const got = await broker.presence.listUids(cursor, limit);
              expect(got.uids.length).toBeLessThanOrEqual(limit);
              listed.push(...got.uids);
              cursor = got.nextCursor;
              if (cursor === null) break;
            }
            expect(cursor).toBeNull();
            expect(listed).toEqual(PAGED_IN_ORDER);
          }
        }
      });
    });

    describe('membership', () => {
      const roomy = { maxGroupsPerUid: 10, maxMembersPerGroup: 10 };

      it('adds, reads and removes a member the same from every node', async () => {
        expect(await at(0).membership.addMember('room', 'alice', roomy)).toBe('added');
        expect(await at(1).membership.addMember('room', 'alice', roomy)).toBe('member');
        expect(await at(2).membership.addMember('room', 'bob', roomy)).toBe('added');
        expect(await at(1).membership.addMember('hall', 'alice', roomy)).toBe('added');
        for (const broker of every()) {
          expect((await broker.membership.members('room')).sort()).toEqual(['alice', 'bob']);
          expect((await broker.membership.groupsOf('alice')).sort()).toEqual(['hall', 'room']);
          expect(await broker.membership.groupsOf('bob')).toEqual(['room']);
        }
        expect(await at(2).membership.removeMember('room', 'alice')).toBe(true);
        expect(await at(0).membership.removeMember('room', 'alice')).toBe(false);
        expect(await at(1).membership.removeMember('nowhere', 'alice')).toBe(false);
        for (const broker of every()) {
          expect(await broker.membership.members('room')).toEqual(['bob']);
          expect(await broker.membership.groupsOf('alice')).toEqual(['hall']);
          expect(await broker.membership.members('nowhere')).toEqual([]);
        }
      });

      it('never lets a group past maxMembersPerGroup, however many nodes add at once', async () => {
        const limits = { maxGroupsPerUid: 10, maxMembersPerGroup: 3 };
        const uids = Array.from({ length: 24 }, (_, i) => `u${String(i)}`);
        const outcomes = await Promise.all(uids.map((uid, i) => at(i).membership.addMember('crowd', uid, limits)));
        expect(outcomes.filter((o) => o === 'added')).toHaveLength(3);
        expect(outcomes.filter((o) => o !== 'added').every((o) => o === 'group_full')).toBe(true);
        const added = uids.filter((_, i) => outcomes[i] === 'added').sort();
        for (const broker of every()) expect((await broker.membership.members('crowd')).sort()).toEqual(added);
        // The refused ones left nothing behind on their side.
        for (const uid of uids.filter((_, i) => outcomes[i] !== 'added')) expect(await at(0).membership.groupsOf(uid)).toEqual([]);
      });

      it('never lets a uid past maxGroupsPerUid, however many nodes add it at once', async () => {
        const limits = { maxGroupsPerUid: 3, maxMembersPerGroup: 10 };
        const groups = Array.from({ length: 24 }, (_, i) => `g${String(i)}`);
        const outcomes = await Promise.all(groups.map((group, i) => at(i).membership.addMember(group, 'busy', limits)));
        expect(outcomes.filter((o) => o === 'added')).toHaveLength(3);
        expect(outcomes.filter((o) => o !== 'added').every((o) => o === 'uid_full')).toBe(true);
        const joined = groups.filter((_, i) => outcomes[i] === 'added').sort();
        for (const broker of every()) expect((await broker.membership.groupsOf('busy')).sort()).toEqual(joined);
      });

      it('never refuses an existing membership, even with both caps reached and new joins racing it', async () => {
        const limits = { maxGroupsPerUid: 2, maxMembersPerGroup: 2 };
        // full: alice and bob (group at its cap); alice: full and other (uid at its cap).
        expect(await at(0).membership.addMember('full', 'alice', limits)).toBe('added');
        expect(await at(1).membership.addMember('full', 'bob', limits)).toBe('added');
        expect(await at(2).membership.addMember('other', 'alice', limits)).toBe('added');
        const again = await Promise.all(
          Array.from({ length: 12 }, (_, i) => {
            const join = [
              ['full', 'alice'],
              ['full', 'bob'],
              ['other', 'alice'],
              ['full', `new${String(i)}`],
              [`new${String(i)}`, 'alice'],
            ] as const;
            const [group, uid] = join[i % join.length] ?? join[0];
            return at(i)
              .membership.addMember(group, uid, limits)
              .then((outcome) => ({ group, uid, outcome }));
          }),
        );
        for (const { group, uid, outcome } of again) {
          const existing = (group === 'full' && (uid === 'alice' || uid === 'bob')) || (group === 'other' && uid === 'alice');
          expect(outcome).toBe(existing ? 'member' : group === 'full' ? 'group_full' : 'uid_full');
        }
        for (const broker of every()) {
          expect((await broker.membership.members('full')).sort()).toEqual(['alice', 'bob']);
          expect((await broker.membership.groupsOf('alice')).sort()).toEqual(['full', 'other']);
        }
      });
    });

    describe('revocations', () => {
      it('shows a revoke to every node', async () => {
        const until = Date.now() + 60_000;
        await at(0).revocations.revoke({ uid: 'alice', before: 1000, until });
        for (const broker of every()) expect(await broker.revocations.revocations()).toEqual([{ uid: 'alice', before: 1000, until }]);
      });

      it('keeps the later of each bound when one uid is revoked twice, from any node', async () => {
        const now = Date.now();
        await at(0).revocations.revoke({ uid: 'alice', before: 2000, until: now + 30_000 });
        await at(1).revocations.revoke({ uid: 'alice', before: 1000, until: now + 90_000 });
        await at(2).revocations.revoke({ uid: 'bob', before: 5000, until: now + 60_000 });
        await at(0).revocations.revoke({ uid: 'bob', before: 7000, until: now + 10_000 });
        for (const broker of every()) {
          const all = (await broker.revocations.revocations()).sort((x, y) => x.uid.localeCompare(y.uid));
          expect(all).toEqual([
            { uid: 'alice', before: 2000, until: now + 90_000 },
            { uid: 'bob', before: 7000, until: now + 60_000 },
          ]);
        }
      });
    });
  });
}

/**
 * The whole broker-level contract on a cluster of 3: publish and subscribe between nodes,
 * then the store part ({@link brokerStoreContract}).
 */
export function brokerLevelContract(name: string, factory: BrokerFactory): void {
  const nodes = 3;
  describe(`broker level: ${name} (${String(nodes)} nodes)`, () => {
    const fleet = fleetPerTest(factory, nodes);
    const node = (i: number): Node => {
      const n = fleet()[i];
      if (n === undefined) throw new Error(`no node ${String(i)}`);
      return n;
    };
    /** A channel of this test alone. */
    const channel = (what: string): string => `${what}-${randomUUID()}`;

    it("delivers a publish from another node once subscribe resolved, and the node's own publishes too", async () => {
      const news = channel('news');
      await node(0).broker.subscribe(news);
      await node(1).broker.publish(news, 'from 1');
      await node(0).next(news, (m) => m === 'from 1');
      // The broker delivers own messages; skipping them is the node's job, not the broker's.
      await node(0).broker.publish(news, 'from 0');
      await node(0).next(news, (m) => m === 'from 0');
      expect(on(node(0), news)).toEqual(['from 1', 'from 0']);
    });

    it('subscribed before start, delivers once start has made the subscription', async () => {
      const other = await factory(1);
      const [extra] = other.brokers;
      if (extra === undefined) throw new Error('the factory made no broker');
      // A broker of another cluster: it only shows that subscribe-before-start resolves.
      const early = channel('early');
      const subscribed = extra.subscribe(early);
      const [late] = await startNodes([extra]);
      try {
        await subscribed;
        if (late === undefined) throw new Error('not started');
        await extra.publish(early, 'hello');
        await late.next(early, (m) => m === 'hello');
      } finally {
        await extra.close();
        await other.close?.();
      }
    });

    it('stops delivering after unsubscribe', async () => {
      const gone = channel('gone');
      const marker = channel('marker');
      await node(0).broker.subscribe(gone);
      await node(1).broker.publish(gone, 'before');
      await node(0).next(gone, (m) => m === 'before');
      node(0).broker.unsubscribe(gone);
      // unsubscribe returns nothing: a subscription this node makes after it and sees
      // resolve is what orders the unsubscribe before the publishes below.
      await node(0).broker.subscribe(marker);
      await node(1).broker.publish(gone, 'after');
      await node(1).broker.publish(marker, 'done');
      await node(0).next(marker, (m) => m === 'done');
      expect(on(node(0), gone)).toEqual(['before']);
    });

    it('delivers to every subscribed node and to no other', async () => {
      const room = channel('room');
      const marker = channel('marker');
      await Promise.all([node(0).broker.subscribe(room), node(1).broker.subscribe(room), node(2).broker.subscribe(marker)]);
      await node(1).broker.publish(room, 'hi');
      await node(1).broker.publish(marker, 'done');
      await Promise.all([
        node(0).next(room, (m) => m === 'hi'),
        node(1).next(room, (m) => m === 'hi'),
        node(2).next(marker, (m) => m === 'done'),
      ]);
      expect(on(node(2), room)).toEqual([]);
    });

    it('delivers 100 publishes of one node on one channel in the order they were made', async () => {
      const burst = channel('burst');
      await Promise.all([node(0).broker.subscribe(burst), node(2).broker.subscribe(burst)]);
      const sent = Array.from({ length: 100 }, (_, i) => `m${String(i)}`);
      // All sent in one go, not one round trip each: order must not depend on pacing.
      await Promise.all(sent.map((m) => node(1).broker.publish(burst, m)));
      await Promise.all([node(0).count(burst, 100), node(2).count(burst, 100)]);
      expect(on(node(0), burst)).toEqual(sent);
      expect(on(node(2), burst)).toEqual(sent);
    });

    it('says it links nodes: peers is true', () => {
      for (const n of fleet()) expect(n.broker.peers).toBe(true);
      expect(new Set(fleet().map((n) => n.broker.nodeId)).size).toBe(nodes);
    });
  });
  brokerStoreContract(name, factory, nodes);
}

// A custom broker: wrap any Broker to watch what crosses the cluster seam. This one counts
// envelopes per channel kind (uid, group, node, all) without changing what they carry; the
// same shape serves for tracing, for sampling into a log, or for a transport of your own
// (implement `publish`/`subscribe` and the four stores, and run the broker contract in
// test/contract/ against it).
//
// Run: npx tsx examples/custom-broker.ts
// Programs outside this repository import from 'uidpush' instead of '../src/index.js'.
import { createServer, MemoryCluster, type Broker } from '../src/index.js';

/** A broker that delegates everything to `inner` and counts what it publishes. */
export interface CountingBroker extends Broker {
  /** Envelopes published so far, by channel kind (`u`, `g`, `n`, `all`). */
  readonly published: ReadonlyMap<string, number>;
}

// Channels are `uidpush:<kind>:<name>` or `uidpush:all` (a Redis broker adds its namespace
// around them); only the kind is counted, so the map stays small however many uids there are.
function kindOf(channel: string): string {
  return /uidpush:(u|g|n|all)\b/.exec(channel)?.[1] ?? 'other';
}

export function countingBroker(inner: Broker): CountingBroker {
  const published = new Map<string, number>();
  return {
    get nodeId() {
      return inner.nodeId;
    },
    get peers() {
      return inner.peers;
    },
    presence: inner.presence,
    membership: inner.membership,
    revocations: inner.revocations,
    inbox: inner.inbox,
    published,
    start: (onMessage) => inner.start(onMessage),
    publish: (channel, message) => {
      const kind = kindOf(channel);
      published.set(kind, (published.get(kind) ?? 0) + 1);
      return inner.publish(channel, message);
    },
    subscribe: (channel) => inner.subscribe(channel),
    unsubscribe: (channel) => {
      inner.unsubscribe(channel);
    },
    isReady: () => inner.isReady(),
    close: () => inner.close(),
  };
}

/**
 * Two servers in one process, linked by an in-memory bus through counting brokers: a push
 * made on one reaches a uid held by the other. Returns both servers, listening on free
 * ports, and their brokers; the caller closes the servers.
 */
export async function twoNodes() {
  const bus = new MemoryCluster();
  const brokers = [countingBroker(bus.createBroker()), countingBroker(bus.createBroker())] as const;
  const servers = brokers.map((broker) => createServer({ port: 0, apiPort: 0, broker }));
  const addresses = await Promise.all(servers.map((s) => s.listen()));
  return { servers, brokers, addresses };
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const { servers, brokers, addresses } = await twoNodes();
  console.log(`node A on ws://127.0.0.1:${String(addresses[0]?.port)}, node B on ws://127.0.0.1:${String(addresses[1]?.port)}`);
  console.log('log in on B (send a uid as text), push on A: POST /v1/push; Ctrl-C prints the counts');
  process.once('SIGINT', () => {
    console.log('published by A:', Object.fromEntries(brokers[0].published));
    void Promise.all(servers.map((s) => s.close()));
  });
}

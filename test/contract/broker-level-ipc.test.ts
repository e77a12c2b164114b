import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  retainedMessage,
  type Broker,
  type InboxStore,
  type MembershipStore,
  type PresenceStore,
  type RevocationStore,
} from '../../src/broker/broker.js';
import { MemoryCluster, servePrimary } from '../../src/broker/ipc.js';
import { RETENTION_DEFAULTS } from '../../src/core/inbox.js';
import { silentLogger } from '../../src/core/types.js';
import { brokerLevelContract } from './broker-level.js';

// Each test forks three workers that load the sources through tsx: seconds on a loaded
// 2-core box, so the hooks get more than the suite's default 20 s.
vi.setConfig({ hookTimeout: 60_000, testTimeout: 60_000 });

// The IPC broker of `--workers` in real node:cluster workers, relayed by this process as
// their primary with the primary code of `serve --workers N` (servePrimary over one
// MemoryCluster). Each worker's broker is driven from here over the same IPC channel.
cluster.setupPrimary({
  exec: join(import.meta.dirname, '../helpers/ipc-broker-worker.ts'),
  execArgv: ['--import', 'tsx'],
  silent: false,
});

interface Reply {
  harness: 'reply';
  id: number;
  result?: unknown;
  error?: string;
}
type FromWorker = Reply | { harness: 'message'; channel: string; message: string } | { harness: 'ready'; nodeId: string };

/** A worker's IPC broker, seen from the test: every call is made in the worker. */
class WorkerBroker implements Broker {
  readonly nodeId: string;
  readonly peers = true;
  readonly presence: PresenceStore;
  readonly membership: MembershipStore;
  readonly revocations: RevocationStore;
  readonly inbox: InboxStore;
  readonly #worker: Worker;
  readonly #exited: Promise<unknown>;
  readonly #stopRelay: () => Promise<void>;
  readonly #pending = new Map<number, (reply: Reply) => void>();
  #nextId = 1;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  #closed = false;

  constructor(worker: Worker, nodeId: string, exited: Promise<unknown>, stopRelay: () => Promise<void>) {
    this.#worker = worker;
    this.nodeId = nodeId;
    this.#exited = exited;
    this.#stopRelay = stopRelay;
    worker.on('message', (msg: FromWorker) => {
      if (msg.harness === 'message') this.#onMessage?.(msg.channel, msg.message);
      else if (msg.harness === 'reply') {
        this.#pending.get(msg.id)?.(msg);
        this.#pending.delete(msg.id);
      }
    });
    const part = <T extends object>(name: 'presence' | 'membership' | 'revocations' | 'inbox', ops: (keyof T)[]): T =>
      Object.fromEntries(ops.map((op) => [op, (...args: unknown[]) => this.#call(name, String(op), args)])) as T;
    this.presence = part<PresenceStore>('presence', ['setLocal', 'connections', 'holders', 'totals', 'connectionTotal', 'listUids']);
    this.membership = part<MembershipStore>('membership', ['addMember', 'removeMember', 'members', 'groupsOf']);
    this.revocations = part<RevocationStore>('revocations', ['revoke', 'revocations']);
    this.inbox = part<InboxStore>('inbox', ['append', 'open', 'read', 'ack', 'info']);
  }

  #call<T>(part: string, op: string, args: unknown[]): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, (reply) => {
        if (reply.error !== undefined) reject(new Error(reply.error));
        else resolve(reply.result as T);
      });
      this.#worker.send({ harness: 'call', id, part, op, args });
    });
  }

  start(onMessage: (channel: string, message: string) => void): Promise<void> {
    this.#onMessage = onMessage;
    return this.#call('broker', 'start', []);
  }

  publish(channel: string, message: string): Promise<void> {
    return this.#call('broker', 'publish', [channel, message]);
  }

  subscribe(channel: string): Promise<void> {
    return this.#call('broker', 'subscribe', [channel]);
  }

  // Sent in order with the calls after it: the worker makes them in that order.
  unsubscribe(channel: string): void {
    void this.#call('broker', 'unsubscribe', [channel]);
  }

  isReady(): boolean {
    return this.#worker.isConnected();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#call('broker', 'close', []);
    this.#worker.kill('SIGKILL');
    await this.#exited;
    await this.#stopRelay();
  }
}

async function startWorker(shared: MemoryCluster): Promise<Broker> {
  const worker = cluster.fork();
  const stopRelay = servePrimary(shared, worker, silentLogger);
  const exited = once(worker, 'exit');
  const nodeId = await Promise.race([
    new Promise<string>((resolve) => {
      const onMessage = (msg: FromWorker): void => {
        if (msg.harness !== 'ready') return;
        worker.off('message', onMessage);
        resolve(msg.nodeId);
      };
      worker.on('message', onMessage);
    }),
    exited.then(() => {
      throw new Error('worker exited before its broker was made');
    }),
  ]);
  return new WorkerBroker(worker, nodeId, exited, stopRelay);
}

brokerLevelContract('node:cluster workers over IPC', async (nodes) => {
  const shared = new MemoryCluster();
  return { brokers: await Promise.all(Array.from({ length: nodes }, () => startWorker(shared))) };
});

describe('the inboxes of node:cluster workers over IPC', () => {
  it("retains every worker's pushes in the primary's one inbox, in order, and routes each envelope to a subscribed worker", async () => {
    const shared = new MemoryCluster();
    const [a, b] = await Promise.all([startWorker(shared), startWorker(shared)]);
    try {
      const channel = 'uidpush:{u:alice}';
      const received: string[] = [];
      let allArrived!: () => void;
      const arrived = new Promise<void>((resolve) => {
        allArrived = resolve;
      });
      await a.start((_channel, message) => {
        if (received.push(message) === 3) allArrived();
      });
      await b.start(() => undefined);
      await a.subscribe(channel);
      const envelope = (who: string) => ({ channel, before: `{"by":"${who}","o":`, after: '}' });
      const request = (who: string) => ({ data: JSON.stringify(who), from: null });
      const results = await Promise.all([
        a.inbox.append('alice', request('a1'), envelope('a1'), RETENTION_DEFAULTS),
        b.inbox.append('alice', request('b1'), envelope('b1'), RETENTION_DEFAULTS),
        a.inbox.append('alice', request('a2'), envelope('a2'), RETENTION_DEFAULTS),
      ]);
      const [a1, b1, a2] = results;
      const epoch = shared.inbox.info('alice', RETENTION_DEFAULTS).epoch;
      expect(results.map((r) => r.epoch)).toEqual([epoch, epoch, epoch]);
      expect(results.map((r) => r.offset).sort()).toEqual([1, 2, 3]);
      // One worker's appends keep its order; the other's fall in between as they arrived.
      expect(a1.offset).toBeLessThan(a2.offset);
      const byOffset = [
        { who: 'a1', offset: a1.offset },
        { who: 'b1', offset: b1.offset },
        { who: 'a2', offset: a2.offset },
      ].sort((x, y) => x.offset - y.offset);
      expect(shared.inbox.read('alice', 0, 10, RETENTION_DEFAULTS).entries.map((e) => JSON.parse(e.data) as string)).toEqual(
        byOffset.map((x) => x.who),
      );
      await arrived;
      expect(received).toEqual(byOffset.map((x) => retainedMessage(envelope(x.who), x.offset, epoch ?? '')));
      // Read back through a worker, as its node does on a reconnect.
      const page = await b.inbox.read('alice', 1, 10, RETENTION_DEFAULTS);
      expect(page).toMatchObject({ epoch, lowest: 1, top: 3 });
      expect(page.entries.map((e) => e.offset)).toEqual([2, 3]);
      // An outage on the primary's side reaches the worker as an UnavailableError.
      shared.up = false;
      await expect(b.inbox.append('alice', request('b2'), envelope('b2'), RETENTION_DEFAULTS)).rejects.toThrow(
        'UnavailableError: memory cluster is down',
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

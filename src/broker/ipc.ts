import type { Worker } from 'node:cluster';
import { UnavailableError } from '../core/errors.js';
import type { Logger } from '../core/types.js';
import { Deadlines } from './bounds.js';
import type { Broker, ClusterStore } from './broker.js';
import { MemoryCluster } from './memory.js';

/**
 * Workers on one machine (`uidpush serve --workers N`): node:cluster workers share the
 * port, and the primary relays between them over IPC, with no external service. The
 * primary keeps the shared state (a {@link MemoryCluster}: presence and groups) and one
 * broker per worker; a worker's broker forwards its calls there.
 */

type ToPrimary =
  | { uidpush: 'pub'; channel: string; message: string }
  | { uidpush: 'sub' | 'unsub'; channel: string }
  | { uidpush: 'local'; uid: string; connections: number }
  | { uidpush: 'req'; id: number; op: StoreOp; args: unknown[] };
type ToWorker =
  | { uidpush: 'msg'; channel: string; message: string }
  | { uidpush: 'res'; id: number; result?: unknown; error?: string };
/** What one event-loop turn queued, sent as one IPC message: one write, one parse. */
interface Batch<T> {
  uidpush: 'batch';
  list: T[];
}

/**
 * Queues messages to one peer and sends them once per event-loop turn: IPC costs a write
 * and a JSON parse on each side per message, so a relay that sends each push alone tops
 * out near 50,000/s on one core (bench/README.md); batched, one write carries a turn's
 * worth. Order is kept.
 */
class Outbox<T> {
  #queue: T[] = [];
  readonly #send: (msg: T | Batch<T>) => void;

  constructor(send: (msg: T | Batch<T>) => void) {
    this.#send = send;
  }

  push(msg: T): void {
    if (this.#queue.push(msg) === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    const list = this.#queue;
    this.#queue = [];
    const [only] = list;
    if (list.length === 1 && only !== undefined) this.#send(only);
    else if (list.length > 1) this.#send({ uidpush: 'batch', list });
  };
}

/** Calls `handle` for each message of a batch, or for the message itself. */
function unbatch<T>(msg: T | Batch<T>, handle: (msg: T) => void): void {
  if ((msg as { uidpush?: unknown }).uidpush === 'batch') for (const one of (msg as Batch<T>).list) handle(one);
  else handle(msg as T);
}
type StoreOp = Exclude<keyof ClusterStore, 'setLocal'>;

/** In the primary: relays for `worker` until it exits; returns the cleanup to call then. */
export function servePrimary(cluster: MemoryCluster, worker: Worker, log: Logger): () => Promise<void> {
  const broker = cluster.createBroker(`worker-${worker.id}`);
  const outbox = new Outbox<ToWorker>((msg) => {
    if (worker.isConnected()) worker.send(msg);
  });
  const send = (msg: ToWorker): void => {
    outbox.push(msg);
  };
  void broker.start((channel, message) => {
    send({ uidpush: 'msg', channel, message });
  });
  const handle = (msg: ToPrimary): void => {
    switch (msg.uidpush) {
      case 'pub':
        broker.publish(msg.channel, msg.message).catch(() => undefined);
        return;
      case 'sub':
        broker.subscribe(msg.channel);
        return;
      case 'unsub':
        broker.unsubscribe(msg.channel);
        return;
      case 'local':
        broker.store.setLocal(msg.uid, msg.connections);
        return;
      case 'req': {
        const store = broker.store as unknown as Partial<Record<string, (...args: unknown[]) => Promise<unknown>>>;
        // Typed, but from another process: check before calling.
        const name = msg.op as string;
        const op = Object.hasOwn(store, name) && name !== 'setLocal' ? store[name] : undefined;
        if (op === undefined || !Array.isArray(msg.args)) {
          // Answer anyway, so the worker's caller does not wait forever.
          send({ uidpush: 'res', id: msg.id, error: `unknown store operation ${name}` });
          return;
        }
        op(...msg.args).then(
          (result) => {
            send({ uidpush: 'res', id: msg.id, result });
          },
          (err: unknown) => {
            send({ uidpush: 'res', id: msg.id, error: String(err) });
          },
        );
        return;
      }
      default:
        log.warn({ worker: worker.id }, 'ipc: unknown message from a worker');
    }
  };
  worker.on('message', (msg: ToPrimary | Batch<ToPrimary>) => {
    unbatch(msg, handle);
  });
  // The worker's presence goes with it at once: its uids read offline immediately.
  return () => broker.close();
}

/** Options of {@link createIpcBroker}. */
export interface IpcBrokerOptions {
  /**
   * Ms a request to the primary may wait; then it fails with an UnavailableError, and the
   * worker reads not ready until the primary answers again.
   * @defaultValue 2000
   */
  timeout?: number;
}

/** In a worker: the broker that talks to the primary. */
export function createIpcBroker(options: IpcBrokerOptions = {}): Broker {
  return new IpcBroker(options.timeout ?? 2000);
}

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  cancel: () => void;
}

class IpcBroker implements Broker {
  readonly nodeId = `worker-${process.env.NODE_UNIQUE_ID ?? process.pid}`;
  readonly store: ClusterStore;
  readonly #pending = new Map<number, Waiter>();
  readonly #deadlines: Deadlines;
  /** A request expired and the primary has answered nothing since. */
  #unanswered = false;
  #nextId = 1;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  readonly #outbox = new Outbox<ToPrimary>((msg) => {
    if (process.connected) process.send?.(msg);
  });
  readonly #listener = (msg: ToWorker | Batch<ToWorker>): void => {
    unbatch(msg, this.#receive);
  };
  readonly #receive = (msg: ToWorker): void => {
    if (msg.uidpush === 'msg') {
      this.#onMessage?.(msg.channel, msg.message);
    } else {
      this.#unanswered = false;
      const waiter = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      waiter?.cancel();
      if (msg.error !== undefined) waiter?.reject(new Error(msg.error));
      else waiter?.resolve(msg.result);
    }
  };

  constructor(timeout: number) {
    this.#deadlines = new Deadlines(timeout);
    const request =
      <T>(op: StoreOp) =>
      (...args: unknown[]): Promise<T> =>
        new Promise<T>((resolve, reject) => {
          const id = this.#nextId++;
          // A primary that stops answering must not leave requests waiting forever.
          const cancel = this.#deadlines.add(() => {
            if (!this.#pending.delete(id)) return;
            this.#unanswered = true;
            reject(new UnavailableError(`${op}: the primary did not answer within ${String(timeout)} ms`));
          });
          this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cancel });
          this.#send({ uidpush: 'req', id, op, args });
        });
    this.store = {
      setLocal: (uid, connections) => {
        this.#send({ uidpush: 'local', uid, connections });
      },
      connections: request('connections'),
      totals: request('totals'),
      connectionTotal: request('connectionTotal'),
      listUids: request('listUids'),
      addMember: request('addMember'),
      removeMember: request('removeMember'),
      members: request('members'),
      groupsOf: request('groupsOf'),
      revoke: request('revoke'),
      revocations: request('revocations'),
    };
  }

  start(onMessage: (channel: string, message: string) => void): Promise<void> {
    if (process.send === undefined) throw new Error('the IPC broker runs in a node:cluster worker');
    this.#onMessage = onMessage;
    process.on('message', this.#listener);
    return Promise.resolve();
  }

  publish(channel: string, message: string): Promise<void> {
    this.#send({ uidpush: 'pub', channel, message });
    return Promise.resolve();
  }

  subscribe(channel: string): void {
    this.#send({ uidpush: 'sub', channel });
  }

  unsubscribe(channel: string): void {
    this.#send({ uidpush: 'unsub', channel });
  }

  isReady(): boolean {
    return process.connected && !this.#unanswered;
  }

  close(): Promise<void> {
    process.off('message', this.#listener);
    this.#deadlines.close();
    for (const waiter of this.#pending.values()) waiter.reject(new Error('closed'));
    this.#pending.clear();
    return Promise.resolve();
  }

  #send(msg: ToPrimary): void {
    this.#outbox.push(msg);
  }
}

export { MemoryCluster };

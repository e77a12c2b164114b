import nodeCluster, { type Worker } from 'node:cluster';
import { UnavailableError } from '../core/errors.js';
import type { MaybePromise } from '../core/service.js';
import type { Logger } from '../core/types.js';
import { Deadlines } from './bounds.js';
import {
  RESOLVED,
  type Broker,
  type InboxStore,
  type MembershipStore,
  type PresenceStore,
  type RetainedEnvelope,
  type RevocationStore,
} from './broker.js';
import { MemoryCluster } from './memory.js';

/**
 * Workers on one machine (`uidpush serve --workers N`): node:cluster workers share the
 * port, and the primary relays between them over IPC, with no external service. The
 * primary keeps the shared state (a {@link MemoryCluster}: presence, groups and the
 * inboxes) and one broker per worker; a worker's broker forwards its calls there. The
 * primary is the one writer of every inbox: an append is one step there, its envelope
 * routed like a worker's publish, so every worker receives a uid's retained pushes in
 * offset order.
 */

type ToPrimary =
  | { uidpush: 'pub'; channel: string; message: string }
  // With an id, the primary answers once the subscription is in effect.
  | { uidpush: 'sub'; channel: string; id?: number }
  | { uidpush: 'unsub'; channel: string }
  | LocalMessage
  | { uidpush: 'req'; id: number; op: StoreOp; args: unknown[] }
  // The process group (see createWorkerGroup): join it, ask for every report, answer one.
  | { uidpush: 'member' }
  | { uidpush: 'gather'; id: number }
  | { uidpush: 'reported'; id: number; report: unknown };
type ToWorker =
  | { uidpush: 'msg'; channel: string; message: string }
  // `unavailable`: the error was an UnavailableError (the worker rethrows it as one).
  | { uidpush: 'res'; id: number; result?: unknown; error?: string; unavailable?: true }
  | { uidpush: 'report'; id: number }
  | { uidpush: 'gathered'; id: number; result?: GroupReport; error?: string };
/** A presence write; with an id, the primary answers once it is recorded (and all before it). */
interface LocalMessage {
  uidpush: 'local';
  uid: string;
  connections: number;
  id?: number;
}
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
  readonly #beforeFlush: (() => void) | undefined;

  /** @param beforeFlush - runs before each send, while the turn's messages may still change. */
  constructor(send: (msg: T | Batch<T>) => void, beforeFlush?: () => void) {
    this.#send = send;
    this.#beforeFlush = beforeFlush;
  }

  push(msg: T): void {
    if (this.#queue.push(msg) === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#beforeFlush?.();
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
/** An inbox call, named apart from the other stores' (`inboxOpen`, `inboxAck`...). */
type InboxOp = `inbox${Capitalize<keyof InboxStore>}`;
/** The store calls a worker asks the primary for; `setLocal` goes as a 'local' message. */
type StoreOp = Exclude<keyof PresenceStore, 'setLocal'> | keyof MembershipStore | keyof RevocationStore | InboxOp;

/** A call's answer as a promise, a throw included: an in-process inbox answers with values. */
function settled<T>(call: () => MaybePromise<T>): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** One process's answer to a {@link ProcessGroup.gather}. */
export interface WorkerReport {
  /** The node:cluster worker id. */
  worker: number;
  pid: number;
  /** What the worker's `join` callback returned. */
  report: unknown;
}

/** Every worker's report at one moment, and the group's presence. */
export interface GroupReport {
  /** One per worker that has joined, in worker id order. */
  workers: WorkerReport[];
  /** Distinct uids with a connection on any worker: a uid on two workers counts once. */
  onlineUids: number;
  /** Logged-in connections over every worker. */
  connections: number;
}

/** A worker, as the primary's group knows it. */
interface Member {
  readonly id: number;
  readonly pid: number;
  readonly send: (msg: ToWorker) => void;
  joined: boolean;
}

/** A gather under way: who has not answered yet, and what those who did said. */
interface Gather {
  readonly waiting: Set<Member>;
  readonly reports: WorkerReport[];
  /** Called after each change; settles once nobody is waiting. */
  readonly check: () => void;
}

/**
 * The primary's side of the process group: the workers relayed over one MemoryCluster are
 * one group, so the group lives with that cluster and needs no separate handle.
 */
class PrimaryGroup {
  readonly members = new Set<Member>();
  readonly #gathers = new Map<number, Gather>();
  #nextId = 1;

  /**
   * Asks every joined worker for its report and answers once all have, or rejects after
   * `timeout` ms: a partial sum would make counters go down, so there is none.
   */
  gather(totals: () => Promise<{ onlineUids: number; connections: number }>, timeout: number): Promise<GroupReport> {
    const id = this.#nextId++;
    const members = [...this.members].filter((m) => m.joined);
    return new Promise<GroupReport>((resolve, reject) => {
      const waiting = new Set(members);
      const reports: WorkerReport[] = [];
      const timer = setTimeout(() => {
        this.#gathers.delete(id);
        const late = [...waiting].map((m) => m.id).join(', ');
        reject(new UnavailableError(`workers ${late} did not report within ${String(timeout)} ms`));
      }, timeout);
      const check = (): void => {
        if (waiting.size > 0 || !this.#gathers.delete(id)) return;
        clearTimeout(timer);
        reports.sort((a, b) => a.worker - b.worker);
        totals().then((t) => {
          resolve({ workers: reports, onlineUids: t.onlineUids, connections: t.connections });
        }, reject);
      };
      this.#gathers.set(id, { waiting, reports, check });
      for (const m of members) m.send({ uidpush: 'report', id });
      check();
    });
  }

  reported(member: Member, id: number, report: unknown): void {
    const gather = this.#gathers.get(id);
    if (gather?.waiting.delete(member) !== true) return;
    gather.reports.push({ worker: member.id, pid: member.pid, report });
    gather.check();
  }

  /** A worker that exits is waited for no longer: its share of the counts is gone with it. */
  leave(member: Member): void {
    this.members.delete(member);
    for (const gather of this.#gathers.values()) {
      if (gather.waiting.delete(member)) gather.check();
    }
  }
}

const primaryGroups = new WeakMap<MemoryCluster, PrimaryGroup>();

/** Options of {@link servePrimary}. */
export interface ServePrimaryOptions {
  /**
   * Ms the primary waits for every worker's report when one asks for the group's stats or
   * metrics; past it, the ask fails (the worker answers 503).
   * @defaultValue 2000
   */
  reportTimeout?: number;
}

/** In the primary: relays for `worker` until it exits; returns the cleanup to call then. */
export function servePrimary(cluster: MemoryCluster, worker: Worker, log: Logger, options: ServePrimaryOptions = {}): () => Promise<void> {
  const broker = cluster.createBroker(`worker-${worker.id}`);
  const outbox = new Outbox<ToWorker>((msg) => {
    if (worker.isConnected()) worker.send(msg);
  });
  const send = (msg: ToWorker): void => {
    outbox.push(msg);
  };
  let group = primaryGroups.get(cluster);
  if (group === undefined) {
    group = new PrimaryGroup();
    primaryGroups.set(cluster, group);
  }
  const member: Member = { id: worker.id, pid: worker.process.pid ?? 0, send, joined: false };
  group.members.add(member);
  const reportTimeout = options.reportTimeout ?? 2000;
  void broker.start((channel, message) => {
    send({ uidpush: 'msg', channel, message });
  });
  const { presence, membership, revocations, inbox } = broker;
  // Own properties only, looked up by a name from another process: nothing else is callable.
  const ops: Partial<Record<string, (...args: never[]) => Promise<unknown>>> = {
    connections: (uids: string[]) => presence.connections(uids),
    holders: (uid: string) => presence.holders(uid),
    totals: () => presence.totals(),
    connectionTotal: () => presence.connectionTotal(),
    listUids: (cursor: string | null, limit: number) => presence.listUids(cursor, limit),
    addMember: (...args: Parameters<MembershipStore['addMember']>) => membership.addMember(...args),
    removeMember: (group: string, uid: string) => membership.removeMember(group, uid),
    members: (group: string) => membership.members(group),
    groupsOf: (uid: string) => membership.groupsOf(uid),
    revoke: (...args: Parameters<RevocationStore['revoke']>) => revocations.revoke(...args),
    revocations: () => revocations.revocations(),
    // JSON turns an undefined argument into null: no envelope comes as null.
    inboxAppend: (...[uid, entry, envelope, retention]: Parameters<InboxStore['append']>) =>
      settled(() => inbox.append(uid, entry, (envelope as RetainedEnvelope | null) ?? undefined, retention)),
    inboxOpen: (...args: Parameters<InboxStore['open']>) => settled(() => inbox.open(...args)),
    inboxRead: (...args: Parameters<InboxStore['read']>) => settled(() => inbox.read(...args)),
    inboxAck: (...args: Parameters<InboxStore['ack']>) => settled(() => inbox.ack(...args)),
    inboxInfo: (...args: Parameters<InboxStore['info']>) => settled(() => inbox.info(...args)),
  } satisfies Record<StoreOp, unknown>;
  /** Answers request `id` once `done` settles. */
  const answer = (id: number, done: Promise<unknown>): void => {
    done.then(
      (result) => {
        send(result === undefined ? { uidpush: 'res', id } : { uidpush: 'res', id, result });
      },
      (err: unknown) => {
        if (err instanceof UnavailableError) send({ uidpush: 'res', id, error: err.message, unavailable: true });
        else send({ uidpush: 'res', id, error: String(err) });
      },
    );
  };
  const handle = (msg: ToPrimary): void => {
    switch (msg.uidpush) {
      case 'pub':
        broker.publish(msg.channel, msg.message).catch(() => undefined);
        return;
      case 'sub': {
        const subscribed = broker.subscribe(msg.channel);
        if (msg.id !== undefined) answer(msg.id, subscribed);
        return;
      }
      case 'unsub':
        broker.unsubscribe(msg.channel);
        return;
      case 'local': {
        const written = presence.setLocal(msg.uid, msg.connections);
        if (msg.id !== undefined) answer(msg.id, written);
        else written.catch(() => undefined);
        return;
      }
      case 'req': {
        // Typed, but from another process: check before calling.
        const name = msg.op as string;
        const op = Object.hasOwn(ops, name) ? (ops[name] as (...args: unknown[]) => Promise<unknown>) : undefined;
        if (op === undefined || !Array.isArray(msg.args)) {
          // Answer anyway, so the worker's caller does not wait forever.
          send({ uidpush: 'res', id: msg.id, error: `unknown store operation ${name}` });
          return;
        }
        answer(msg.id, op(...msg.args));
        return;
      }
      case 'member':
        member.joined = true;
        return;
      case 'gather':
        ownGroup
          .gather(() => presence.totals(), reportTimeout)
          .then(
            (result) => {
              send({ uidpush: 'gathered', id: msg.id, result });
            },
            (err: unknown) => {
              send({ uidpush: 'gathered', id: msg.id, error: (err as Error).message });
            },
          );
        return;
      case 'reported':
        ownGroup.reported(member, msg.id, msg.report);
        return;
      default:
        log.warn({ worker: worker.id }, 'ipc: unknown message from a worker');
    }
  };
  const ownGroup = group;
  worker.on('message', (msg: ToPrimary | Batch<ToPrimary>) => {
    // The channel is shared: messages without this key are the CLI's (a listen failure).
    if (typeof (msg as { uidpush?: unknown } | null)?.uidpush !== 'string') return;
    unbatch(msg, handle);
  });
  // The worker's presence goes with it at once: its uids read offline immediately.
  return () => {
    ownGroup.leave(member);
    return broker.close();
  };
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
  // The primary names this worker's node `worker-<id>` in the store (holders answers with
  // it); node deletes NODE_UNIQUE_ID from the worker's environment at start, so the id is
  // read from cluster.worker.
  readonly nodeId = `worker-${String(nodeCluster.worker?.id ?? process.pid)}`;
  readonly peers = true;
  readonly presence: PresenceStore;
  readonly membership: MembershipStore;
  readonly revocations: RevocationStore;
  /** Every call goes to the primary, the one writer of every inbox. */
  readonly inbox: InboxStore;
  readonly #pending = new Map<number, Waiter>();
  readonly #deadlines: Deadlines;
  readonly #timeout: number;
  /** A request expired and the primary has answered nothing since. */
  #unanswered = false;
  #nextId = 1;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  /** Whether the answers of the primary are listened to: from the first request or start. */
  #listening = false;
  /** Settles once started (rejects if closed first): what a subscription made before start waits for. */
  readonly #started: Promise<void>;
  #markStarted: (() => void) | undefined;
  #cancelStart: ((err: Error) => void) | undefined;
  /** This turn's last presence write, and the answer every write of the turn waits for. */
  #lastLocal: LocalMessage | undefined;
  #localWritten: { id: number; promise: Promise<void> } | undefined;
  readonly #outbox = new Outbox<ToPrimary>(
    (msg) => {
      if (process.connected) process.send?.(msg);
    },
    () => {
      // One answer per turn, asked on its last write: the primary records in order, so
      // that answer means every write of the turn is recorded.
      if (this.#lastLocal !== undefined && this.#localWritten !== undefined) this.#lastLocal.id = this.#localWritten.id;
      this.#lastLocal = undefined;
      this.#localWritten = undefined;
    },
  );
  readonly #listener = (msg: ToWorker | Batch<ToWorker>): void => {
    unbatch(msg, this.#receive);
  };
  readonly #receive = (msg: ToWorker): void => {
    if (msg.uidpush === 'msg') {
      this.#onMessage?.(msg.channel, msg.message);
    } else if (msg.uidpush === 'res') {
      this.#unanswered = false;
      const waiter = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      waiter?.cancel();
      if (msg.error !== undefined) waiter?.reject(msg.unavailable === true ? new UnavailableError(msg.error) : new Error(msg.error));
      else waiter?.resolve(msg.result);
    }
  };

  constructor(timeout: number) {
    this.#timeout = timeout;
    this.#deadlines = new Deadlines(timeout);
    this.#started = new Promise<void>((resolve, reject) => {
      this.#markStarted = resolve;
      this.#cancelStart = reject;
    });
    this.#started.catch(() => undefined);
    const request =
      <T>(op: StoreOp) =>
      (...args: unknown[]): Promise<T> =>
        this.#ask<T>(op, (id) => {
          this.#send({ uidpush: 'req', id, op, args });
        });
    this.presence = {
      setLocal: (uid, connections) => {
        const msg: LocalMessage = { uidpush: 'local', uid, connections };
        this.#send(msg);
        this.#lastLocal = msg;
        if (this.#localWritten === undefined) {
          const id = this.#nextId++;
          this.#localWritten = { id, promise: this.#ask<undefined>('presence write', () => undefined, id) };
        }
        return this.#localWritten.promise;
      },
      connections: request('connections'),
      holders: request('holders'),
      totals: request('totals'),
      connectionTotal: request('connectionTotal'),
      listUids: request('listUids'),
    };
    this.membership = {
      addMember: request('addMember'),
      removeMember: request('removeMember'),
      members: request('members'),
      groupsOf: request('groupsOf'),
    };
    this.revocations = {
      revoke: request('revoke'),
      revocations: request('revocations'),
    };
    this.inbox = {
      append: request('inboxAppend'),
      open: request('inboxOpen'),
      read: request('inboxRead'),
      ack: request('inboxAck'),
      info: request('inboxInfo'),
    };
  }

  /**
   * Waits for the primary's answer to request `id`, which `send(id)` sends; fails with an
   * UnavailableError after the timeout. The rejection is handled here, so a caller that
   * ignores the promise (a presence write, a subscription) leaves none unhandled.
   */
  #ask<T>(what: string, send: (id: number) => void, id = this.#nextId++): Promise<T> {
    const answered = new Promise<T>((resolve, reject) => {
      // A primary that stops answering must not leave requests waiting forever.
      const cancel = this.#deadlines.add(() => {
        if (!this.#pending.delete(id)) return;
        this.#unanswered = true;
        reject(new UnavailableError(`${what}: the primary did not answer within ${String(this.#timeout)} ms`));
      });
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cancel });
      // Before start too: an answer that comes while nobody listens would be lost.
      this.#listen();
      send(id);
    });
    answered.catch(() => undefined);
    return answered;
  }

  start(onMessage: (channel: string, message: string) => void): Promise<void> {
    if (process.send === undefined) throw new Error('the IPC broker runs in a node:cluster worker');
    this.#onMessage = onMessage;
    this.#listen();
    this.#markStarted?.();
    return Promise.resolve();
  }

  #listen(): void {
    if (this.#listening) return;
    this.#listening = true;
    process.on('message', this.#listener);
  }

  publish(channel: string, message: string): Promise<void> {
    this.#send({ uidpush: 'pub', channel, message });
    return RESOLVED;
  }

  /**
   * Resolves once the primary has subscribed this worker: its later publishes reach it.
   * Before start, also once started: until then a message would find no `onMessage`.
   */
  subscribe(channel: string): Promise<void> {
    const made = this.#ask<undefined>(`subscribe ${channel}`, (id) => {
      this.#send({ uidpush: 'sub', channel, id });
    });
    if (this.#onMessage !== undefined) return made;
    const both = Promise.all([made, this.#started]).then(() => undefined);
    both.catch(() => undefined);
    return both;
  }

  unsubscribe(channel: string): void {
    this.#send({ uidpush: 'unsub', channel });
  }

  isReady(): boolean {
    return process.connected && !this.#unanswered;
  }

  close(): Promise<void> {
    process.off('message', this.#listener);
    this.#listening = false;
    this.#cancelStart?.(new Error('closed'));
    this.#deadlines.close();
    for (const waiter of this.#pending.values()) waiter.reject(new Error('closed'));
    this.#pending.clear();
    return Promise.resolve();
  }

  #send(msg: ToPrimary): void {
    this.#outbox.push(msg);
  }
}

/**
 * The workers of one primary seen as one server: what `GET /v1/stats` and `/metrics`
 * answer under `--workers`, whichever worker takes the request. The primary asks every
 * worker for its report and answers with all of them plus the group's presence (distinct
 * uids), so a worker can sum counters that only grow and count uids once.
 */
export interface ProcessGroup {
  /** Joins the group: from now on the primary's asks are answered with `report()`. */
  join(report: () => unknown): void;
  /**
   * Every joined worker's report, this one's included.
   * @throws UnavailableError when the primary or a worker does not answer in time.
   */
  gather(): Promise<GroupReport>;
  /**
   * Records this worker's connections of `uid` in the group's presence. A no-op when the
   * IPC broker already records it (the group and the cluster are one then).
   */
  setLocal(uid: string, connections: number): void;
  close(): void;
}

/** Options of {@link createWorkerGroup}. */
export interface WorkerGroupOptions {
  /**
   * Ms a gather may wait for the primary.
   * @defaultValue 5000 (more than the primary's own wait for the workers)
   */
  timeout?: number;
  /**
   * Report presence to the primary: true when the worker's broker is not the IPC one (each
   * worker a Redis node), so the group still counts its distinct uids.
   * @defaultValue false
   */
  presence?: boolean;
}

/** In a worker: its side of the process group of `--workers`. */
export function createWorkerGroup(options: WorkerGroupOptions = {}): ProcessGroup {
  return new WorkerGroup(options.timeout ?? 5000, options.presence ?? false);
}

class WorkerGroup implements ProcessGroup {
  readonly #timeout: number;
  readonly #presence: boolean;
  readonly #pending = new Map<number, { resolve: (r: GroupReport) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;
  #report: (() => unknown) | undefined;
  readonly #outbox = new Outbox<ToPrimary>((msg) => {
    if (process.connected) process.send?.(msg);
  });
  readonly #listener = (msg: ToWorker | Batch<ToWorker>): void => {
    unbatch(msg, this.#receive);
  };
  readonly #receive = (msg: ToWorker): void => {
    if (msg.uidpush === 'report') {
      void this.#answer(msg.id);
    } else if (msg.uidpush === 'gathered') {
      const waiter = this.#pending.get(msg.id);
      if (waiter === undefined) return;
      this.#pending.delete(msg.id);
      clearTimeout(waiter.timer);
      if (msg.result === undefined) waiter.reject(new UnavailableError(msg.error ?? 'the primary could not gather the workers'));
      else waiter.resolve(msg.result);
    }
  };

  constructor(timeout: number, presence: boolean) {
    this.#timeout = timeout;
    this.#presence = presence;
    process.on('message', this.#listener);
  }

  join(report: () => unknown): void {
    this.#report = report;
    this.#outbox.push({ uidpush: 'member' });
  }

  async #answer(id: number): Promise<void> {
    // Always answer, so the primary never waits out its timeout for a worker that is here.
    let report: unknown = null;
    try {
      report = await this.#report?.();
    } catch {
      // null: the asking worker reads it as a worker with nothing to report.
    }
    this.#outbox.push({ uidpush: 'reported', id, report });
  }

  gather(): Promise<GroupReport> {
    if (!process.connected) return Promise.reject(new UnavailableError('no primary: not a node:cluster worker'));
    return new Promise<GroupReport>((resolve, reject) => {
      const id = this.#nextId++;
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) reject(new UnavailableError(`the primary did not answer within ${String(this.#timeout)} ms`));
      }, this.#timeout);
      this.#pending.set(id, { resolve, reject, timer });
      this.#outbox.push({ uidpush: 'gather', id });
    });
  }

  setLocal(uid: string, connections: number): void {
    if (this.#presence) this.#outbox.push({ uidpush: 'local', uid, connections });
  }

  close(): void {
    process.off('message', this.#listener);
    for (const waiter of this.#pending.values()) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error('closed'));
    }
    this.#pending.clear();
  }
}

export { MemoryCluster };

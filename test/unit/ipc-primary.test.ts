import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createIpcBroker, MemoryCluster, servePrimary } from '../../src/broker/ipc.js';
import { retainedMessage } from '../../src/broker/broker.js';
import { UnavailableError } from '../../src/core/errors.js';
import { RETENTION_DEFAULTS } from '../../src/core/inbox.js';
import { warningLog } from '../helpers/logs.js';

/** The primary's side of one worker's IPC channel, without a process behind it. */
class FakeWorker extends EventEmitter {
  readonly sent: unknown[] = [];
  readonly id: number;
  readonly process: { pid: number };
  /** Called after each message the primary sends, once it is in `sent`. */
  onSent: (() => void) | undefined;
  constructor(id = 1) {
    super();
    this.id = id;
    this.process = { pid: 4000 + id };
  }
  isConnected(): boolean {
    return true;
  }
  send(msg: unknown): boolean {
    this.sent.push(msg);
    this.onSent?.();
    return true;
  }
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the primary of --workers', () => {
  it('answers a store request it does not know with an error, and logs other unknown messages', async () => {
    const { logger, warnings } = warningLog();
    const worker = new FakeWorker();
    const stop = servePrimary(new MemoryCluster(), worker as unknown as Worker, logger);
    worker.emit('message', { uidpush: 'req', id: 1, op: 'flushAll', args: [] });
    worker.emit('message', { uidpush: 'req', id: 2, op: 'setLocal', args: ['u', 1] });
    worker.emit('message', { uidpush: 'req', id: 3, op: 'totals', args: 'not a list' });
    worker.emit('message', { uidpush: 'teleport' });
    worker.emit('message', { uidpush: 'batch', list: [{ uidpush: 'req', id: 4, op: 'connectionTotal', args: [] }] });
    await flush();
    await flush();
    expect(worker.sent).toEqual([
      {
        uidpush: 'batch',
        list: [
          { uidpush: 'res', id: 1, error: 'unknown store operation flushAll' },
          { uidpush: 'res', id: 2, error: 'unknown store operation setLocal' },
          { uidpush: 'res', id: 3, error: 'unknown store operation totals' },
          { uidpush: 'res', id: 4, result: 0 },
        ],
      },
    ]);
    expect(warnings.map((w) => w.msg)).toEqual(['ipc: unknown message from a worker']);
    await stop();
  });

  it('keeps the token cut-offs of every worker in its shared store', async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const one = new FakeWorker(1);
    const two = new FakeWorker(2);
    const stops = [servePrimary(shared, one as unknown as Worker, logger), servePrimary(shared, two as unknown as Worker, logger)];
    const until = Date.now() + 60_000;
    one.emit('message', { uidpush: 'req', id: 1, op: 'revoke', args: [{ uid: 'alice', before: 1000, until }] });
    await flush();
    two.emit('message', { uidpush: 'req', id: 7, op: 'revocations', args: [] });
    await flush();
    await flush();
    expect(two.sent).toContainEqual({ uidpush: 'res', id: 7, result: [{ uid: 'alice', before: 1000, until }] });
    for (const stop of stops) await stop();
  });
});

/** Every message the primary sent `worker`, batches opened. */
function received(worker: FakeWorker): Record<string, unknown>[] {
  return worker.sent.flatMap((m) => {
    const msg = m as { uidpush: string; list?: Record<string, unknown>[] };
    return msg.uidpush === 'batch' ? (msg.list ?? []) : [msg];
  });
}

describe('the process group of --workers, in the primary', () => {
  it("answers a gather with every joined worker's report in worker order and the group's distinct uids", async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const [one, two] = [new FakeWorker(1), new FakeWorker(2)];
    const stops = [servePrimary(shared, one as unknown as Worker, logger), servePrimary(shared, two as unknown as Worker, logger)];
    for (const w of [one, two]) w.emit('message', { uidpush: 'member' });
    // alice on both workers: one uid, two connections.
    one.emit('message', { uidpush: 'local', uid: 'alice', connections: 1 });
    two.emit('message', { uidpush: 'local', uid: 'alice', connections: 1 });
    two.emit('message', { uidpush: 'gather', id: 9 });
    await flush();
    const asks = (w: FakeWorker): Record<string, unknown>[] => received(w).filter((m) => m.uidpush === 'report');
    expect(asks(one)).toHaveLength(1);
    expect(asks(two)).toHaveLength(1);
    two.emit('message', { uidpush: 'reported', id: asks(two)[0]?.id, report: 'two' });
    one.emit('message', { uidpush: 'reported', id: asks(one)[0]?.id, report: 'one' });
    await flush();
    await flush();
    expect(received(two).find((m) => m.uidpush === 'gathered')).toEqual({
      uidpush: 'gathered',
      id: 9,
      result: {
        workers: [
          { worker: 1, pid: 4001, report: 'one' },
          { worker: 2, pid: 4002, report: 'two' },
        ],
        onlineUids: 1,
        connections: 2,
      },
    });
    for (const stop of stops) await stop();
  });

  it('fails a gather a worker does not answer in time, rather than answer a partial sum', async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const [one, two] = [new FakeWorker(1), new FakeWorker(2)];
    const options = { reportTimeout: 100 };
    const stops = [
      servePrimary(shared, one as unknown as Worker, logger, options),
      servePrimary(shared, two as unknown as Worker, logger, options),
    ];
    for (const w of [one, two]) w.emit('message', { uidpush: 'member' });
    one.emit('message', { uidpush: 'gather', id: 1 });
    await flush();
    const ask = received(one).find((m) => m.uidpush === 'report');
    // The event is the primary's answer; it comes once the timeout has passed.
    const gathered = new Promise<void>((resolve) => {
      one.onSent = () => {
        if (received(one).some((m) => m.uidpush === 'gathered')) resolve();
      };
    });
    one.emit('message', { uidpush: 'reported', id: ask?.id, report: 'one' });
    await gathered;
    expect(received(one).find((m) => m.uidpush === 'gathered')).toEqual({
      uidpush: 'gathered',
      id: 1,
      error: 'workers 2 did not report within 100 ms',
    });
    for (const stop of stops) await stop();
  });

  it('answers without a worker that exits while the gather waits for it', async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const [one, two] = [new FakeWorker(1), new FakeWorker(2)];
    const stopOne = servePrimary(shared, one as unknown as Worker, logger);
    const stopTwo = servePrimary(shared, two as unknown as Worker, logger);
    for (const w of [one, two]) w.emit('message', { uidpush: 'member' });
    one.emit('message', { uidpush: 'gather', id: 1 });
    await flush();
    const ask = received(one).find((m) => m.uidpush === 'report');
    one.emit('message', { uidpush: 'reported', id: ask?.id, report: 'one' });
    await stopTwo();
    await flush();
    await flush();
    expect(received(one).find((m) => m.uidpush === 'gathered')).toMatchObject({
      result: { workers: [{ worker: 1, pid: 4001, report: 'one' }] },
    });
    await stopOne();
  });
});

describe('the inboxes of --workers, in the primary', () => {
  const channel = 'uidpush:{u:alice}';
  const envelope = { channel, before: '{"o":', after: '}' };
  const append = (worker: FakeWorker, id: number, data: string, withEnvelope = true): void => {
    // As a worker sends it: JSON turns the missing envelope into null.
    const args = ['alice', { data, from: null }, withEnvelope ? envelope : null, RETENTION_DEFAULTS];
    worker.emit('message', { uidpush: 'req', id, op: 'inboxAppend', args });
  };
  /** Resolves once `worker` has received what `done` looks for. */
  const until = (worker: FakeWorker, done: (msgs: Record<string, unknown>[]) => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (done(received(worker))) resolve();
      };
      worker.onSent = check;
      check();
    });

  it("appends every worker's pushes to one inbox in arrival order, and routes each envelope to the subscribed workers", async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const [one, two] = [new FakeWorker(1), new FakeWorker(2)];
    const stops = [servePrimary(shared, one as unknown as Worker, logger), servePrimary(shared, two as unknown as Worker, logger)];
    one.emit('message', { uidpush: 'sub', channel, id: 1 });
    await until(one, (msgs) => msgs.some((m) => m.uidpush === 'res' && m.id === 1));
    append(one, 2, '"a"');
    append(two, 7, '"b"');
    append(one, 3, '"c"', false);
    append(one, 4, '"d"');
    const messages = (msgs: Record<string, unknown>[]): unknown[] => msgs.filter((m) => m.uidpush === 'msg').map((m) => m.message);
    await until(one, (msgs) => messages(msgs).length === 3);
    await until(two, (msgs) => msgs.some((m) => m.uidpush === 'res'));
    const epoch = shared.inbox.info('alice', RETENTION_DEFAULTS).epoch ?? '';
    const answers = (w: FakeWorker): unknown[] => received(w).filter((m) => m.uidpush === 'res' && m.id !== 1);
    expect(answers(one)).toEqual([
      { uidpush: 'res', id: 2, result: { epoch, offset: 1, duplicate: false } },
      { uidpush: 'res', id: 3, result: { epoch, offset: 3, duplicate: false } },
      { uidpush: 'res', id: 4, result: { epoch, offset: 4, duplicate: false } },
    ]);
    expect(answers(two)).toEqual([{ uidpush: 'res', id: 7, result: { epoch, offset: 2, duplicate: false } }]);
    // The sender's own envelopes too, in offset order; none for the push without one, and
    // none to the worker that did not subscribe.
    expect(messages(received(one))).toEqual([1, 2, 4].map((offset) => retainedMessage(envelope, offset, epoch)));
    expect(messages(received(two))).toEqual([]);
    expect(shared.inbox.read('alice', 0, 10, RETENTION_DEFAULTS).entries.map((e) => e.data)).toEqual(['"a"', '"b"', '"c"', '"d"']);
    for (const stop of stops) await stop();
  });

  it('answers the other inbox calls from the shared inbox, and marks an outage as unavailable', async () => {
    const { logger } = warningLog();
    const shared = new MemoryCluster();
    const one = new FakeWorker(1);
    const stop = servePrimary(shared, one as unknown as Worker, logger);
    one.emit('message', { uidpush: 'req', id: 1, op: 'inboxOpen', args: ['alice', 'phone', RETENTION_DEFAULTS] });
    append(one, 2, '"a"', false);
    one.emit('message', { uidpush: 'req', id: 3, op: 'inboxAck', args: ['alice', 'phone', 1, RETENTION_DEFAULTS] });
    one.emit('message', { uidpush: 'req', id: 4, op: 'inboxRead', args: ['alice', 0, 10, RETENTION_DEFAULTS] });
    one.emit('message', { uidpush: 'req', id: 5, op: 'inboxInfo', args: ['alice', RETENTION_DEFAULTS] });
    await until(one, (msgs) => msgs.filter((m) => m.uidpush === 'res').length === 5);
    shared.up = false;
    append(one, 6, '"b"');
    await until(one, (msgs) => msgs.some((m) => m.id === 6));
    const res = received(one).filter((m) => m.uidpush === 'res');
    const epoch = shared.inbox.info('alice', RETENTION_DEFAULTS).epoch ?? '';
    expect(res.map((m) => m.result ?? m.error)).toMatchObject([
      { epoch, top: 0, lowest: 1, cursor: null },
      { epoch, offset: 1, duplicate: false },
      { ok: true, cursor: 1 },
      { epoch, lowest: 1, top: 1, entries: [{ offset: 1, data: '"a"', from: null }] },
      { uid: 'alice', epoch, top: 1, devices: [{ device: 'phone', cursor: 1 }] },
      'memory cluster is down',
    ]);
    expect(res[5]).toEqual({ uidpush: 'res', id: 6, error: 'memory cluster is down', unavailable: true });
    expect(shared.inbox.info('alice', RETENTION_DEFAULTS).top).toBe(1);
    await stop();
  });
});

describe("a worker's broker", () => {
  it('fails a request the primary never answers with unavailable after its timeout, not never', async () => {
    // Outside a worker nothing reaches a primary: exactly a primary that stops answering.
    const broker = createIpcBroker({ timeout: 100 });
    const started = Date.now();
    await expect(broker.presence.connections(['u'])).rejects.toThrow(UnavailableError);
    await expect(broker.membership.members('g')).rejects.toThrow('members: the primary did not answer within 100 ms');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(broker.isReady()).toBe(false);
    await broker.close();
  });
});

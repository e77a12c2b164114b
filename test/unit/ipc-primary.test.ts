import type { Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { createIpcBroker, MemoryCluster, servePrimary } from '../../src/broker/ipc.js';
import { UnavailableError } from '../../src/core/errors.js';
import { warningLog } from '../helpers/logs.js';

/** The primary's side of one worker's IPC channel, without a process behind it. */
class FakeWorker extends EventEmitter {
  readonly id = 1;
  readonly sent: unknown[] = [];
  isConnected(): boolean {
    return true;
  }
  send(msg: unknown): boolean {
    this.sent.push(msg);
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
    const one = new FakeWorker();
    const two = new FakeWorker();
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

describe('a worker\'s broker', () => {
  it('fails a request the primary never answers with unavailable after its timeout, not never', async () => {
    // Outside a worker nothing reaches a primary: exactly a primary that stops answering.
    const broker = createIpcBroker({ timeout: 100 });
    const started = Date.now();
    await expect(broker.store.connections(['u'])).rejects.toThrow(UnavailableError);
    await expect(broker.store.members('g')).rejects.toThrow('members: the primary did not answer within 100 ms');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(broker.isReady()).toBe(false);
    await broker.close();
  });
});

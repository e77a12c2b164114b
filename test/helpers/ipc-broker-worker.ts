// A node:cluster worker for the broker-level contract: the IPC broker of `--workers`,
// driven from the test (its primary) over the same IPC channel. The broker ignores these
// messages (no `uidpush` key) and the primary's relay does too.
import { createIpcBroker } from '../../src/broker/ipc.js';

/** A call from the test: `part` is the broker itself or one of its stores. */
interface Call {
  harness: 'call';
  id: number;
  part: 'broker' | 'presence' | 'membership' | 'revocations' | 'inbox';
  op: string;
  args: unknown[];
}

const broker = createIpcBroker();

const reply = (msg: Record<string, unknown>): void => {
  if (process.connected) process.send?.({ harness: 'reply', ...msg });
};

process.on('message', (msg: Call | null) => {
  if (msg?.harness !== 'call') return;
  let done: Promise<unknown>;
  try {
    if (msg.part === 'broker' && msg.op === 'start') {
      done = broker.start((channel, message) => {
        if (process.connected) process.send?.({ harness: 'message', channel, message });
      });
    } else {
      // Called at once, in arrival order: the order the test made the calls in.
      const target = (msg.part === 'broker' ? broker : broker[msg.part]) as unknown as Record<string, (...args: unknown[]) => unknown>;
      const op = target[msg.op];
      if (typeof op !== 'function') throw new Error(`no operation ${msg.part}.${msg.op}`);
      done = Promise.resolve(op.apply(target, msg.args));
    }
  } catch (err) {
    done = Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  done.then(
    (result) => {
      reply({ id: msg.id, result });
    },
    (err: unknown) => {
      reply({ id: msg.id, error: String(err) });
    },
  );
});

process.send?.({ harness: 'ready', nodeId: broker.nodeId });

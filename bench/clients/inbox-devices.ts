/**
 * Replay-storm devices for bench/inbox.ts: `count` uids, one uidpush.v1 device each
 * (`d1`), over several source addresses. `connect` opens them all (at most `concurrency`
 * handshakes at a time; 0 = all at once); the first time without `since`, remembering
 * each welcome's inbox position, then (`resume: true`) with `since` = that position, and
 * counts each device's replay: offsets must come as since + 1, since + 2, ... in order.
 * `close` ends every connection.
 */
import { WebSocket } from 'ws';
import { now, serve } from '../lib/ipc.js';

interface ConnectArgs {
  url: string;
  prefix: string;
  count: number;
  localAddresses: string[];
  concurrency: number;
  resume: boolean;
  /** Messages each device must get to be complete (resume only). */
  expect: number;
  timeoutMs: number;
}

interface Device {
  uid: string;
  epoch: string;
  offset: number;
  /** The next offset this device must get. */
  next: number;
  got: number;
  missed: number;
  ws?: WebSocket;
}

const devices: Device[] = [];

function connect(args: ConnectArgs): Promise<unknown> {
  if (devices.length === 0) {
    for (let i = 0; i < args.count; i++) devices.push({ uid: `${args.prefix}${i}`, epoch: '', offset: 0, next: 1, got: 0, missed: -1 });
  }
  const started = now();
  let firstOpenAt = 0;
  let lastWelcomeAt = 0;
  let lastCompleteAt = 0;
  let opened = 0;
  let complete = 0;
  let errors = 0;
  let violations = 0;
  let wrongMissed = 0;
  let wrongEpoch = 0;
  let messages = 0;
  let next = 0;
  const errorSamples: string[] = [];
  const violationSamples: string[] = [];
  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve({
        startedAt: started,
        firstOpenAt,
        lastWelcomeAt,
        lastCompleteAt,
        opened,
        complete,
        errors,
        violations,
        wrongMissed,
        wrongEpoch,
        messages,
        errorSamples,
        violationSamples,
      });
    };
    const timer = setTimeout(finish, args.timeoutMs);
    const settleOne = (): void => {
      if (args.resume ? complete + errors >= args.count : opened + errors >= args.count) finish();
    };
    const launch = (): void => {
      if (next >= devices.length) return;
      const i = next++;
      const d = devices[i] as Device;
      const localAddress = args.localAddresses[i % args.localAddresses.length] ?? '127.0.0.1';
      const ws = new WebSocket(args.url, 'uidpush.v1', { localAddress, perMessageDeflate: false });
      d.ws = ws;
      let welcomed = false;
      ws.on('open', () => {
        if (firstOpenAt === 0) firstOpenAt = now();
        const auth: Record<string, unknown> = { type: 'auth', uid: d.uid, device: 'd1' };
        if (args.resume) auth.since = { epoch: d.epoch, offset: d.offset };
        ws.send(JSON.stringify(auth));
      });
      ws.on('message', (data: Buffer) => {
        const text = data.toString('latin1');
        if (!welcomed) {
          welcomed = true;
          const w = JSON.parse(text) as { type: string; inbox?: { epoch: string; offset: number }; missed?: number };
          if (w.type !== 'welcome' || w.inbox === undefined) {
            errors++;
            if (errorSamples.length < 5) errorSamples.push(text.slice(0, 300));
            settleOne();
            return;
          }
          opened++;
          lastWelcomeAt = now();
          if (args.resume) {
            d.missed = w.missed ?? -1;
            if (d.missed !== args.expect) wrongMissed++;
            if (w.inbox.epoch !== d.epoch) wrongEpoch++;
            d.next = d.offset + 1;
            d.got = 0;
          } else {
            d.epoch = w.inbox.epoch;
            d.offset = w.inbox.offset;
            settleOne();
          }
          launch();
          return;
        }
        messages++;
        // {"type":"message",...,"offset":<n>,"epoch":...}
        const at = text.indexOf('"offset":');
        const offset = at < 0 ? NaN : parseInt(text.slice(at + 9, at + 30), 10);
        if (offset !== d.next) {
          violations++;
          if (violationSamples.length < 5) violationSamples.push(`${d.uid}: expected ${d.next}, got ${text.slice(0, 200)}`);
        }
        d.next = offset + 1;
        d.got++;
        if (args.resume && d.got === args.expect) {
          complete++;
          lastCompleteAt = now();
          settleOne();
        }
      });
      ws.on('error', (err) => {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`${d.uid}: ${err.message}`);
        if (!welcomed) {
          welcomed = true;
          settleOne();
          launch();
        }
      });
    };
    const n = args.concurrency > 0 ? Math.min(args.concurrency, devices.length) : devices.length;
    for (let i = 0; i < n; i++) launch();
  });
}

serve({
  connect: (args) => connect(args as ConnectArgs),
  cpu: () => process.cpuUsage(),
  close: () => {
    let n = 0;
    for (const d of devices) {
      if (d.ws !== undefined) {
        d.ws.terminate();
        d.ws = undefined;
        n++;
      }
    }
    return n;
  },
});
process.send?.({ ready: true });

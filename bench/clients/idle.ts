/**
 * Idle clients: open `count` logged-in connections and record when each broadcast
 * (`b|<seq>|<sent-at>`) arrives. Counting stays local and cheap; the totals go to the
 * orchestrator on request, so the client is not the bottleneck it measures. Every other
 * message (a push) only bumps a counter, read and reset with `received`.
 */
import { WebSocket } from 'ws';
import { now, serve } from '../lib/ipc.js';

interface OpenArgs {
  url: string;
  prefix: string;
  count: number;
  localAddress: string;
  concurrency: number;
}

interface Seen {
  count: number;
  first: number;
  last: number;
  latencies: number[];
}

const sockets: WebSocket[] = [];
const seen = new Map<number, Seen>();
let errors = 0;
/** The first error messages (at most 20), for the report. */
const errorMessages: string[] = [];
/** Messages received since the last `received` that are not broadcasts. */
let received = 0;

function onMessage(data: Buffer): void {
  const at = now();
  // 0x62 'b', 0x7c '|'
  if (data[0] !== 0x62 || data[1] !== 0x7c) {
    received++;
    return;
  }
  const text = data.toString('latin1');
  const bar = text.indexOf('|', 2);
  const seq = Number(text.slice(2, bar));
  const sent = Number(text.slice(bar + 1));
  let s = seen.get(seq);
  if (s === undefined) {
    s = { count: 0, first: at, last: at, latencies: [] };
    seen.set(seq, s);
  }
  s.count++;
  s.last = at;
  s.latencies.push(at - sent);
}

function open(args: OpenArgs): Promise<{ opened: number; errors: number }> {
  let next = 0;
  let done = 0;
  const before = sockets.length;
  const errorsBefore = errors;
  return new Promise((resolve) => {
    const launch = (): void => {
      if (next >= args.count) return;
      const uid = `${args.prefix}${next++}`;
      const ws = new WebSocket(args.url, { localAddress: args.localAddress, perMessageDeflate: false });
      let loggedIn = false;
      const finish = (): void => {
        done++;
        if (done === args.count) resolve({ opened: sockets.length - before, errors: errors - errorsBefore });
        else launch();
      };
      ws.on('open', () => {
        ws.send(uid);
      });
      ws.on('message', (data: Buffer) => {
        if (!loggedIn) {
          loggedIn = true;
          sockets.push(ws);
          finish();
          return;
        }
        onMessage(data);
      });
      ws.on('error', (err) => {
        errors++;
        if (errorMessages.length < 20) errorMessages.push(`${uid}: ${err.message}`);
        if (!loggedIn) {
          loggedIn = true;
          finish();
        }
      });
      // Closed by the server before login, without an error: counted as one, so that
      // `open` still ends.
      ws.on('close', (code) => {
        if (loggedIn) return;
        loggedIn = true;
        errors++;
        if (errorMessages.length < 20) errorMessages.push(`${uid}: closed with ${code} before login`);
        finish();
      });
    };
    for (let i = 0; i < Math.min(args.concurrency, args.count); i++) launch();
  });
}

serve({
  open: (args) => open(args as OpenArgs),
  broadcasts: () => {
    const out = [...seen.entries()].map(([seq, s]) => ({
      seq,
      count: s.count,
      first: s.first,
      last: s.last,
      latencies: s.latencies,
    }));
    seen.clear();
    return out;
  },
  /** Pushes (non-broadcast messages) received since the last call; resets the count. */
  received: () => {
    const count = received;
    received = 0;
    return count;
  },
  cpu: () => process.cpuUsage(),
  /** The first error messages seen (at most 20). */
  errors: () => errorMessages,
  close: () => {
    for (const ws of sockets) ws.terminate();
    return sockets.length;
  },
});
process.send?.({ ready: true });

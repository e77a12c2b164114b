/**
 * Idle clients: open `count` logged-in connections and record when each broadcast
 * (`b|<seq>|<sent-at>`) arrives. Counting stays local and cheap; the totals go to the
 * orchestrator on request, so the client is not the bottleneck it measures. Every other
 * message (a push) only bumps a counter, read and reset with `received`.
 *
 * Connections are raw (bench/lib/raw-ws.ts), so opening thousands costs the client little
 * and the time to open and log them in is the server's. `storm` drops them all at once and
 * reconnects them all at once, as a deploy or a network blip does (from a new source
 * address: the dropped connections' ports are in TIME_WAIT on the old one).
 */
import { RawClient, type RawHandlers } from '../lib/raw-ws.js';
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

interface Opened {
  opened: number;
  errors: number;
  /** From the first connect to the last login reply, in ms. */
  ms: number;
}

/** Logged-in clients, by uid. */
const clients = new Map<string, RawClient>();
const seen = new Map<number, Seen>();
let errors = 0;
/** The first error messages (at most 20), for the report. */
const errorMessages: string[] = [];
/** Messages received since the last `received` that are not broadcasts. */
let received = 0;
let lastArgs: OpenArgs[] = [];

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

function open(args: OpenArgs): Promise<Opened> {
  const url = new URL(args.url);
  const started = now();
  let next = 0;
  let done = 0;
  let opened = 0;
  const errorsBefore = errors;
  return new Promise((resolve) => {
    const finish = (): void => {
      done++;
      if (done === args.count) resolve({ opened, errors: errors - errorsBefore, ms: now() - started });
      else launch();
    };
    const loggedIn = new WeakSet<RawClient>();
    const handlers: RawHandlers = {
      open: (client) => {
        client.send(client.tag);
      },
      message: (client, data) => {
        if (loggedIn.has(client)) {
          onMessage(data);
          return;
        }
        loggedIn.add(client);
        clients.set(client.tag, client);
        opened++;
        finish();
      },
      close: (client, error) => {
        if (clients.get(client.tag) === client) clients.delete(client.tag);
        if (loggedIn.has(client)) return;
        // Closed or failed before its login reply: counted, so that `open` still ends.
        loggedIn.add(client);
        errors++;
        if (errorMessages.length < 20) errorMessages.push(`${client.tag}: ${error ?? 'closed before login'}`);
        finish();
      },
    };
    const launch = (): void => {
      if (next >= args.count) return;
      const client = new RawClient(url, args.localAddress, handlers);
      client.tag = `${args.prefix}${next++}`;
    };
    for (let i = 0; i < Math.min(args.concurrency, args.count); i++) launch();
  });
}

serve({
  open: (args) => {
    lastArgs.push(args as OpenArgs);
    return open(args as OpenArgs);
  },
  /**
   * Every connection dropped at once (no close frame: a lost link), then every one of them
   * opened again with `concurrency` connects outstanding: the time to have all logged in.
   */
  storm: async (args) => {
    const { concurrency, localAddress } = args as { concurrency: number; localAddress: string };
    for (const client of clients.values()) client.destroy();
    clients.clear();
    const again = lastArgs;
    lastArgs = [];
    const started = now();
    const results = await Promise.all(again.map((a) => open({ ...a, concurrency, localAddress })));
    lastArgs = again;
    return {
      opened: results.reduce((n, r) => n + r.opened, 0),
      errors: results.reduce((n, r) => n + r.errors, 0),
      ms: now() - started,
    } satisfies Opened;
  },
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
    const n = clients.size;
    for (const client of clients.values()) client.destroy();
    clients.clear();
    return n;
  },
});
process.send?.({ ready: true });

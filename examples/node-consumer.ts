// A Node consumer with the client SDK: a long-running process (a worker, a bridge to another
// system) that receives one uid's pushes and prints each as one JSON line on stdout, with
// the connection's state changes and the inbox's recovered/unrecovered events. Its
// ClientStorage is a JSON file, so a restarted consumer resumes from the inbox position it
// had: with the server's inbox on, what was pushed while it was down is replayed, once.
//
// The file matters even though close() acks: a consumer that is killed (SIGKILL, a crash,
// a lost machine) never sends its last ack, and the file still has every message it
// printed, so the replay starts after those instead of at the server's older cursor.
// Without DEVICE the file also keeps the device id the server made up, so the restarted
// process is the same device rather than a new one.
//
// Run: npx tsx examples/node-consumer.ts
//   (URL, default ws://127.0.0.1:1234; UID, default alice; DEVICE, optional; STATE_FILE,
//   default uidpush-consumer-<uid>-<device>.json in the OS temp folder). bash keeps its own
//   UID read-only, so pass that one through env: `env UID=bob npx tsx examples/node-consumer.ts`.
// SIGINT or SIGTERM closes the client (which acks what it printed) and exits 0.
// Programs outside this repository import from 'uidpush/client' instead of '../src/client/index.js'.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { Client, type ClientStorage } from '../src/client/index.js';

/** A ClientStorage kept in one JSON file (an object of the SDK's keys and values). */
export function fileStorage(path: string): ClientStorage {
  // A missing file is a first run; a file that does not parse is an error, not a fresh
  // start, since starting over would silently drop the device id it holds.
  const values = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>) : {};
  return {
    get: (key) => values[key] ?? null,
    set: (key, value) => {
      values[key] = value;
      // The SDK saves after every retained message, synchronously, so a kill between two
      // messages loses nothing; write-then-rename so that a kill mid-write leaves the old
      // file whole instead of half a new one.
      const temporary = `${path}.tmp`;
      writeFileSync(temporary, JSON.stringify(values));
      renameSync(temporary, path);
    },
  };
}

export interface ConsumerOptions {
  /** The server's ws:// or wss:// address. */
  readonly url: string;
  /** The uid to log in as (a server with auth off). */
  readonly uid: string;
  /** This device's id in the inbox; without one, the server's is kept in the state file. */
  readonly device?: string;
  /** The JSON file the inbox position (and device id) persist in. */
  readonly stateFile: string;
  /** Where each JSON line goes; default stdout. */
  readonly print?: (line: string) => void;
}

/**
 * Connects and prints every event as a JSON line (`{"event":"message",...}`, `state`,
 * `recovered`, `unrecovered`, `error`). Returns the client; `client.close()` stops it.
 */
export function runConsumer(options: ConsumerOptions): Client {
  const print =
    options.print ??
    ((line: string) => {
      process.stdout.write(`${line}\n`);
    });
  const line = (event: string, fields: object): void => {
    print(JSON.stringify({ event, ...fields }));
  };
  const client = new Client(options.url, {
    uid: options.uid,
    ...(options.device === undefined ? {} : { device: options.device }),
    storage: fileStorage(options.stateFile),
    WebSocket,
  });
  client.on('state', (s) => {
    line('state', s);
  });
  client.on('recovered', (r) => {
    line('recovered', r);
  });
  client.on('unrecovered', (u) => {
    line('unrecovered', u);
  });
  client.on('message', (m) => {
    line('message', m);
  });
  client.on('error', (e) => {
    line('error', { code: e.code, message: e.message });
  });
  return client;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const uid = process.env.UID ?? 'alice';
  const device = process.env.DEVICE;
  const client = runConsumer({
    url: process.env.URL ?? 'ws://127.0.0.1:1234',
    uid,
    ...(device === undefined ? {} : { device }),
    stateFile: process.env.STATE_FILE ?? join(tmpdir(), `uidpush-consumer-${uid}-${device ?? 'default'}.json`),
  });
  const stop = (): void => {
    client.close();
    // Not process.exit() at once: the last ack and the close frame are still being written,
    // and the process ends by itself once the socket has closed. The timer only bounds a
    // close handshake that a dead server never answers.
    process.exitCode = 0;
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

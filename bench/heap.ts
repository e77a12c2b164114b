/**
 * What a connection keeps on the server's heap, by constructor: a heap snapshot of the
 * server (after GC) before and after `--n` idle logged-in connections, diffed by node type
 * and name, divided by the connections. For uidpush and the naive ws server, in turn.
 *
 * Usage: npm run bench:heap -- [--n 2000] [--top 25] [--only uidpush|naive]
 *
 * Bounded: one server and one client process per implementation, two snapshots each; the
 * snapshots go to a temporary folder that is removed at the end.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ask } from './lib/ipc.js';
import { describeMachine, forkReady, killStarted, stopChild } from './lib/proc.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '2000' }, top: { type: 'string', default: '25' }, only: { type: 'string' } },
});
const N = Number(values.n);
const TOP = Number(values.top);
const IMPLS = values.only !== undefined ? [values.only] : ['naive', 'uidpush'];
const here = import.meta.dirname;

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: unknown[] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per `<type> <name>` of a .heapsnapshot. */
function tally(path: string): Map<string, { count: number; bytes: number }> {
  const snap = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0] as string[];
  const width = fields.length;
  const [iType, iName, iSize] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType] ?? 0] ?? '?';
    // Strings and numbers are named by their value: one bucket per type for them.
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden' || type === 'array';
    const key = named ? `${type} ${snap.strings[snap.nodes[i + iName] ?? 0] ?? '?'}` : `(${type})`;
    const entry = out.get(key) ?? { count: 0, bytes: 0 };
    entry.count++;
    entry.bytes += snap.nodes[i + iSize] ?? 0;
    out.set(key, entry);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'uidpush-heap-'));
process.on('exit', () => {
  rmSync(dir, { recursive: true, force: true });
});
process.stdout.write(`N = ${String(N)} idle logged-in connections; machine: ${describeMachine()}\n`);
for (const [run, impl] of IMPLS.entries()) {
  const server = await forkReady(join(here, 'servers', `${impl}.ts`), { execArgv: ['--expose-gc'] });
  const client = await forkReady(join(here, 'clients', 'idle.ts'));
  const before = await ask<string>(server.child, 'heapSnapshot', dir);
  const opened = await ask<{ opened: number; errors: number }>(client.child, 'open', {
    url: `ws://127.0.0.1:${String(server.ready.port)}`,
    prefix: 'h',
    count: N,
    localAddress: `127.${String(40 + run)}.0.2`,
    concurrency: 64,
  });
  if (opened.opened !== N) throw new Error(`${impl}: opened ${String(opened.opened)} of ${String(N)}`);
  const after = await ask<string>(server.child, 'heapSnapshot', dir);
  const a = tally(before);
  const b = tally(after);
  const rows = [...b]
    .map(([key, v]) => ({ key, count: v.count - (a.get(key)?.count ?? 0), bytes: v.bytes - (a.get(key)?.bytes ?? 0) }))
    .filter((r) => r.bytes > 0);
  const total = rows.reduce((n, r) => n + r.bytes, 0);
  process.stdout.write(`\n${impl}: ${(total / N).toFixed(0)} B of heap per connection (self sizes, growth by node kind)\n\n`);
  process.stdout.write('| node | per connection | B per connection |\n|---|---:|---:|\n');
  for (const r of rows.sort((x, y) => y.bytes - x.bytes).slice(0, TOP)) {
    process.stdout.write(`| ${r.key.replace(/\|/g, '\\|')} | ${(r.count / N).toFixed(2)} | ${(r.bytes / N).toFixed(0)} |\n`);
  }
  await stopChild(client.child);
  await stopChild(server.child);
}
killStarted();

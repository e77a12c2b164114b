/**
 * Summarises a V8 CPU profile (`--cpu-prof`, e.g. from `BENCH_PROF=<dir> npm run bench`):
 * self time per function and per file, over the whole profile or a time window of it, so
 * a profile can be read per bench phase without a browser.
 *
 * Usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [--top 25] [--from <s>] [--to <s>]
 *          [--timeline <bucket s>] [--match <regexp>]
 * `--match` adds total time (self + callees) of the functions whose label matches, e.g.
 * `--match 'src/'` for where our own code's calls spend. `--under <regexp>` keeps only the
 * samples with a matching function on their stack (e.g. `--under 'broadcast '`).
 * `--from`/`--to` are seconds since the profile started; `--timeline` prints the share of
 * non-idle samples per bucket, to find the phases.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '25' },
    from: { type: 'string' },
    to: { type: 'string' },
    timeline: { type: 'string' },
    match: { type: 'string' },
    under: { type: 'string' },
  },
});
const file = positionals[0];
if (file === undefined) throw new Error('usage: profile-summary <file.cpuprofile> [--top N] [--from s] [--to s] [--timeline s]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const from = values.from !== undefined ? Number(values.from) * 1e6 : -Infinity;
const to = values.to !== undefined ? Number(values.to) * 1e6 : Infinity;

const shortUrl = (url: string): string => {
  const i = url.lastIndexOf('/node_modules/');
  if (i !== -1) return url.slice(i + 14);
  const src = url.search(/\/(src|bench)\//);
  return src !== -1 ? url.slice(src + 1) : url.replace(/^node:/, 'node:');
};
const label = (n: ProfileNode): string =>
  `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}${n.callFrame.url ? `:${String(n.callFrame.lineNumber + 1)}` : ''}`;

const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const match = values.match !== undefined ? new RegExp(values.match) : undefined;
const under = values.under !== undefined ? new RegExp(values.under) : undefined;
const hasAncestor = (id: number, re: RegExp): boolean => {
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const n = byId.get(at);
    if (n !== undefined && re.test(label(n))) return true;
  }
  return false;
};
const totalUs = new Map<string, number>();
const selfUs = new Map<string, number>();
const fileUs = new Map<string, number>();
let total = 0;
let idle = 0;
let t = 0;
const bucketUs = values.timeline !== undefined ? Number(values.timeline) * 1e6 : 0;
const buckets: { busy: number; all: number }[] = [];
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  t += dt;
  const node = byId.get(profile.samples[i] ?? -1);
  if (node === undefined) continue;
  const isIdle = node.callFrame.functionName === '(idle)';
  if (bucketUs > 0) {
    const b = Math.floor(t / bucketUs);
    buckets[b] ??= { busy: 0, all: 0 };
    const bucket = buckets[b];
    bucket.all += dt;
    if (!isIdle) bucket.busy += dt;
  }
  if (t < from || t > to) continue;
  if (under !== undefined && !hasAncestor(node.id, under)) continue;
  total += dt;
  if (isIdle) {
    idle += dt;
    continue;
  }
  const key = label(node);
  selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
  if (match !== undefined) {
    // Each matching function on the sample's stack, once even if it recurses.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
      const n = byId.get(id);
      if (n === undefined) break;
      const l = label(n);
      if (!match.test(l) || seen.has(l)) continue;
      seen.add(l);
      totalUs.set(l, (totalUs.get(l) ?? 0) + dt);
    }
  }
  const f = node.callFrame.url === '' ? '(native / V8)' : shortUrl(node.callFrame.url).replace(/:\d+$/, '');
  fileUs.set(f, (fileUs.get(f) ?? 0) + dt);
}
const top = Number(values.top);
const pct = (us: number): string => `${((us / total) * 100).toFixed(1)}%`;
const busy = total - idle;
process.stdout.write(
  `window ${(total / 1e6).toFixed(1)} s; idle ${pct(idle)}; busy ${(busy / 1e6).toFixed(2)} s\n\nself time by function (share of the window):\n`,
);
for (const [k, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(us).padStart(6)}  ${k}\n`);
if (match !== undefined) {
  process.stdout.write(`\ntotal time (self + callees) of functions matching ${String(match)}:\n`);
  for (const [k, us] of [...totalUs].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(us).padStart(6)}  ${k}\n`);
}
process.stdout.write('\nself time by file:\n');
for (const [k, us] of [...fileUs].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(us).padStart(6)}  ${k}\n`);
if (bucketUs > 0) {
  process.stdout.write('\ntimeline (busy share per bucket):\n');
  buckets.forEach((b, i) => {
    process.stdout.write(
      `  ${String((i * bucketUs) / 1e6).padStart(5)} s  ${((b.busy / Math.max(1, b.all)) * 100).toFixed(0).padStart(3)}%\n`,
    );
  });
}

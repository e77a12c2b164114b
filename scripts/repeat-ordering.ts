// Runs the ordering cases of the contract suite (a login reply, then a push through every
// node; a join, then a publish through every node; no wait in between) in all six
// topologies, N times in a row (default 20), and stops at the first failure.
// Usage: npm run test:ordering -- [runs]
import { spawnSync } from 'node:child_process';

const runs = Number(process.argv[2] ?? 20);
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, not ${String(process.argv[2])}`);
const files = ['embedded', 'memory', 'workers', 'redis', 'redis-cluster', 'redis-sentinel'].map((t) => `test/contract/${t}.test.ts`);
const started = Date.now();
for (let run = 1; run <= runs; run++) {
  const t0 = Date.now();
  const result = spawnSync('npx', ['vitest', 'run', ...files, '-t', 'as soon as'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  const summary = /Tests\s+(.*)/.exec(result.stdout)?.[1] ?? '?';
  console.log(
    `run ${String(run)}/${String(runs)}: ${result.status === 0 ? 'ok' : 'FAILED'} (${summary.trim()}) in ${String(Date.now() - t0)} ms`,
  );
  if (result.status !== 0) {
    console.log(result.stdout);
    process.exit(1);
  }
}
console.log(`${String(runs)} runs in a row without a failure, ${String(Math.round((Date.now() - started) / 1000))} s`);

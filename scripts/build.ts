// The build: `tsc -b`, which skips the work when its build info says dist is current.
// The build info cannot see files removed from dist, nor outputs of sources that are
// gone, so dist is checked against src first and, when they differ, built from scratch.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');

/** Paths under `dir` (relative to it) of the files whose name ends with `ext`, without it. */
function stems(dir: string, ext: string): Set<string> {
  if (!existsSync(dir)) return new Set();
  const found = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(ext) && !entry.name.endsWith('.d.ts'))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).slice(0, -ext.length));
  return new Set(found);
}

const sources = stems(SRC, '.ts');
const built = stems(DIST, '.js');
const incomplete = [...sources].some((stem) => ['.js', '.d.ts', '.js.map'].some((ext) => !existsSync(join(DIST, stem + ext))));
const orphaned = [...built].some((stem) => !sources.has(stem));
if (existsSync(DIST) && (incomplete || orphaned)) rmSync(DIST, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-b', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
process.exitCode = result.status ?? 1;

// The build: `tsc -b`, which skips the work when its build info says dist is current.
// The build info cannot see files removed from dist, nor outputs of sources that are
// gone, so dist is checked against src first and, when they differ, built from scratch.
// Then the client SDK's browser bundle (dist/browser), one ESM file a page can load with
// a plain <script type="module">, written only when its bytes change.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { clientBundleOptions } from './client-bundle.js';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
/** The browser bundle's folder: made by esbuild, not by tsc, so it has no sources of its own. */
const BROWSER = join(DIST, 'browser');

/** Paths under `dir` (relative to it) of the files whose name ends with `ext`, without it. */
function stems(dir: string, ext: string): Set<string> {
  if (!existsSync(dir)) return new Set();
  const found = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(ext) && !entry.name.endsWith('.d.ts'))
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)).slice(0, -ext.length));
  return new Set(found);
}

const sources = stems(SRC, '.ts');
const built = new Set([...stems(DIST, '.js')].filter((stem) => !join(DIST, stem).startsWith(BROWSER)));
const incomplete = [...sources].some((stem) => ['.js', '.d.ts', '.js.map'].some((ext) => !existsSync(join(DIST, stem + ext))));
const orphaned = [...built].some((stem) => !sources.has(stem));
if (existsSync(DIST) && (incomplete || orphaned)) rmSync(DIST, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-b', join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
process.exitCode = result.status ?? 1;
if (process.exitCode === 0) await bundleClient();

/** dist/browser/uidpush-client.js (+ .map): the SDK for browsers, minified, ES2022. */
async function bundleClient(): Promise<void> {
  const bundle = await build({
    ...clientBundleOptions(ROOT),
    outfile: join(BROWSER, 'uidpush-client.js'),
    sourcemap: 'linked',
    write: false,
  });
  mkdirSync(BROWSER, { recursive: true });
  for (const file of bundle.outputFiles) {
    if (existsSync(file.path) && readFileSync(file.path).equals(file.contents)) continue;
    writeFileSync(file.path, file.contents);
  }
}

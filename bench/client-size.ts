/**
 * The client SDK's browser bundle against two peers' clients: centrifuge-js (`centrifuge`)
 * and socket.io-client, each bundled with the same esbuild settings as ours
 * (scripts/client-bundle.ts: bundle, esm, platform browser, target es2022, minify), from
 * an entry that re-exports what a user imports. Prints version, minified, gzip (level 9)
 * and brotli bytes per client, as a markdown table.
 *
 * Usage: npx tsx bench/client-size.ts   (npm run bench:client-size)
 * The peers are not dependencies of this project: they are installed (latest) into a
 * temporary folder, which is removed at the end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build, version as esbuildVersion, type BuildOptions } from 'esbuild';
import { BROWSER_BUNDLE, CLIENT_GZIP_BUDGET, clientBundleOptions } from '../scripts/client-bundle.js';

const ROOT = join(import.meta.dirname, '..');

interface Entry {
  readonly name: string;
  readonly version: string;
  /** What the bundle exports, as a user would import it. */
  readonly exports: string;
  readonly options: BuildOptions;
}

interface Measured {
  readonly entry: Entry;
  readonly minified: number;
  readonly gzip: number;
  readonly brotli: number;
}

function packageVersion(dir: string): string {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '?';
}

async function measure(entry: Entry): Promise<Measured> {
  const result = await build({ ...entry.options, write: false, outfile: 'out.js' });
  const [file] = result.outputFiles;
  if (file === undefined) throw new Error(`${entry.name}: esbuild wrote nothing`);
  const bytes = file.contents;
  return {
    entry,
    minified: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY } }).length,
  };
}

const n = (value: number): string => value.toLocaleString('en-US');

const dir = mkdtempSync(join(tmpdir(), 'uidpush-client-size-'));
try {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  console.error(`installing centrifuge and socket.io-client (latest) into ${dir}...`);
  execFileSync(npm, ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, 'centrifuge', 'socket.io-client'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  // Each peer's entry names only its client class or factory, as its README's first
  // example imports it, so tree-shaking keeps what such a user ships and drops the rest.
  const peer = (name: string, pkg: string, exports: string): Entry => {
    const file = join(dir, `${pkg}.entry.mjs`);
    writeFileSync(file, `export { ${exports} } from '${pkg}';\n`);
    return {
      name,
      version: packageVersion(join(dir, 'node_modules', pkg)),
      exports: `{ ${exports} } from '${pkg}'`,
      options: { ...BROWSER_BUNDLE, entryPoints: [file] },
    };
  };
  const entries: Entry[] = [
    {
      name: 'uidpush/client',
      version: packageVersion(ROOT),
      exports: 'all of src/client/index.ts (Client, ClientError, PROTOCOL, 4 helpers)',
      options: clientBundleOptions(ROOT),
    },
    peer('centrifuge-js', 'centrifuge', 'Centrifuge'),
    peer('socket.io-client', 'socket.io-client', 'io'),
  ];

  const rows: Measured[] = [];
  for (const entry of entries) rows.push(await measure(entry));

  console.log(`esbuild ${esbuildVersion}, Node ${process.version}; gzip level 9, brotli quality 11\n`);
  console.log('| client | version | bundled exports | minified B | gzip B | brotli B |');
  console.log('|---|---|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.entry.name} | ${r.entry.version} | ${r.entry.exports} | ${n(r.minified)} | ${n(r.gzip)} | ${n(r.brotli)} |`);
  }
  const ours = rows[0];
  if (ours !== undefined) {
    console.log(`\nbudget (test/integration/client-bundle.test.ts): gzip <= ${n(CLIENT_GZIP_BUDGET)} B; ours is ${n(ours.gzip)} B`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

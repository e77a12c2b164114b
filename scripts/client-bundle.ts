// The esbuild settings of the client SDK's browser bundle, in one place: the build
// (scripts/build.ts), the size test (test/integration/client-bundle.test.ts) and the size
// bench (bench/client-size.ts) all use these, so the bytes the test budgets and the bench
// compares are the bytes the build ships.
import { join } from 'node:path';
import type { BuildOptions } from 'esbuild';

/**
 * How any entry is bundled for browsers: one minified ES2022 module. The bench bundles the
 * peers' clients with these too, so the comparison is like for like.
 */
export const BROWSER_BUNDLE: Readonly<BuildOptions> = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
};

/**
 * The SDK's bundle from `root`/src/client/index.ts, without `outfile`, `write` or
 * `sourcemap`: the caller says where the bytes go (the build adds a linked source map,
 * which appends one `//# sourceMappingURL=` line to the shipped file).
 */
export function clientBundleOptions(root: string): BuildOptions {
  return { ...BROWSER_BUNDLE, entryPoints: [join(root, 'src/client/index.ts')] };
}

/**
 * The most the SDK's bundle may weigh gzipped (level 9), in bytes: the size test fails
 * above it. Set with headroom over the measured size (bench/README.md, issue 13), so a
 * feature fits and a stray dependency does not.
 */
export const CLIENT_GZIP_BUDGET = 4096;

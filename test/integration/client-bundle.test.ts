import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_GZIP_BUDGET, clientBundleOptions } from '../../scripts/client-bundle.js';

// The client SDK's browser bundle, built in memory with the build's own esbuild options
// (scripts/client-bundle.ts), so these are the bytes dist/browser/uidpush-client.js holds.
// Its size against the peers' clients: bench/client-size.ts, figures in bench/README.md.
const ROOT = join(import.meta.dirname, '../..');
let code = '';
let dir = '';

beforeAll(async () => {
  const result = await build({ ...clientBundleOptions(ROOT), outfile: 'uidpush-client.js', write: false });
  const [file, ...rest] = result.outputFiles;
  expect(rest).toHaveLength(0);
  code = file?.text ?? '';
  dir = await mkdtemp(join(tmpdir(), 'uidpush-client-bundle-'));
}, 60_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('the client SDK browser bundle', () => {
  it(`stays within its gzip budget of ${String(CLIENT_GZIP_BUDGET)} bytes`, () => {
    expect(code.length).toBeGreaterThan(0);
    const gzip = gzipSync(code, { level: 9 }).length;
    expect(gzip).toBeLessThanOrEqual(CLIENT_GZIP_BUDGET);
  });

  it('references nothing of Node: no node: import, require, process or Buffer', () => {
    // A browser would fail on any of these at load or at first use, and the source's lint
    // rules (BROWSER_SAFE in eslint.config.js) cannot see what a dependency drags in.
    expect(code).not.toMatch(/node:/);
    expect(code).not.toMatch(/\brequire\(/);
    expect(code).not.toMatch(/\bprocess\./);
    expect(code).not.toMatch(/\bBuffer\b/);
  });

  it('loads as an ES module that exports Client and ClientError', async () => {
    const path = join(dir, 'uidpush-client.mjs');
    await writeFile(path, code);
    const mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    expect(typeof mod.Client).toBe('function');
    expect(typeof mod.ClientError).toBe('function');
    const ClientError = mod.ClientError as new (code: string, message: string) => Error & { code: string };
    const error = new ClientError('timeout', 'no answer');
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('ClientError');
    expect(error.code).toBe('timeout');
  });
});

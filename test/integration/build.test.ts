import { execFile } from 'node:child_process';
import { appendFile, cp, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `npm run build` (and so `npm start`'s prestart) in a copy of the repository's build
// inputs, so the dist that other tests and the developer use is left alone.
const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);
let copy = '';

async function build(): Promise<void> {
  await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '--silent', 'build'], { cwd: copy });
}

/** Every file of dist with its modification time, in ns. */
async function mtimes(): Promise<Map<string, bigint>> {
  const dist = join(copy, 'dist');
  const files = await readdir(dist, { recursive: true, withFileTypes: true });
  const out = new Map<string, bigint>();
  for (const f of files) {
    if (!f.isFile()) continue;
    const path = join(f.parentPath, f.name);
    out.set(path.slice(dist.length + 1), (await stat(path, { bigint: true })).mtimeNs);
  }
  return out;
}

beforeAll(async () => {
  copy = await mkdtemp(join(tmpdir(), 'uidpush-build-'));
  for (const path of ['src', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
    await cp(join(ROOT, path), join(copy, path), { recursive: true });
  }
  await symlink(join(ROOT, 'node_modules'), join(copy, 'node_modules'), 'dir');
});

afterAll(async () => {
  if (copy !== '') await rm(copy, { recursive: true, force: true });
});

describe('npm run build', { timeout: 300_000 }, () => {
  it('rewrites nothing when no source changed, and rebuilds after a change, a deleted dist or a deleted output', async () => {
    await build();
    const first = await mtimes();
    expect(first.has('index.js')).toBe(true);
    expect(first.has('cli/main.js')).toBe(true);

    await build();
    expect(await mtimes()).toEqual(first);

    await appendFile(join(copy, 'src/core/types.ts'), '\n// changed after the first build\n');
    await build();
    const changed = await mtimes();
    expect(changed.get('core/types.js')).toBeGreaterThan(first.get('core/types.js') ?? 0n);
    expect(await readFile(join(copy, 'dist/core/types.js'), 'utf8')).toContain('// changed after the first build');

    await rm(join(copy, 'dist'), { recursive: true });
    await build();
    expect([...(await mtimes()).keys()].sort()).toEqual([...first.keys()].sort());

    // The build info still says current; the build notices the missing file all the same.
    await rm(join(copy, 'dist/index.js'));
    await build();
    expect((await stat(join(copy, 'dist/index.js'))).isFile()).toBe(true);
  });

  it('drops the outputs of a source that is gone', async () => {
    await build();
    await rename(join(copy, 'src/cli/version.ts'), join(copy, 'src/cli/release.ts'));
    const main = join(copy, 'src/cli/main.ts');
    await writeFile(main, (await readFile(main, 'utf8')).replace("'./version.js'", "'./release.js'"));
    await build();
    const files = await mtimes();
    expect(files.has('cli/release.js')).toBe(true);
    expect(files.has('cli/version.js')).toBe(false);
    expect(files.has('cli/version.d.ts')).toBe(false);
  });
});

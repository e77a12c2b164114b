import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// What a program that installs uidpush gets: the tarball `npm pack` makes (its `prepare`
// builds dist), installed with its production dependencies into a project of its own,
// outside this repository so nothing resolves to our node_modules.
const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);

interface Manifest {
  name: string;
  version: string;
}

/** The first ```ts block after `heading` in a Markdown file: the docs are what is compiled. */
async function snippet(file: string, heading: string): Promise<string> {
  const text = await readFile(join(ROOT, file), 'utf8');
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) throw new Error(`${file} has no heading '${heading}'`);
  const block = /```ts\n([\s\S]*?)\n```/.exec(text.slice(at));
  if (block?.[1] === undefined) throw new Error(`${file}: no ts block under '${heading}'`);
  return `${block[1]}\n`;
}

/** Runs a command to completion; a failure carries its output, so the test shows it. */
async function sh(file: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await run(file, args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`, { cause: err });
  }
}

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let dir = '';
let project = '';
let manifest: Manifest;

beforeAll(async () => {
  manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Manifest;
  const typesNode = JSON.parse(await readFile(join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')) as Manifest;
  dir = await mkdtemp(join(tmpdir(), 'uidpush-pack-'));
  await sh(NPM, ['pack', '--silent', '--pack-destination', dir], ROOT);
  const tarball = join(dir, `${manifest.name}-${manifest.version}.tgz`);
  project = join(dir, 'project');
  await mkdir(project);
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }));
  // As strict as a project gets, and without skipLibCheck: our .d.ts are checked too.
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        types: ['node'],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
      },
      include: ['*.ts'],
    }),
  );
  await writeFile(join(project, 'embedding.ts'), await snippet('README.md', '## Embedding'));
  await writeFile(join(project, 'client.ts'), await snippet('docs/http-api.md', '## From Node: `uidpush/api-client`'));
  // @types/node at the version we build against: any Node TypeScript project has it.
  await sh(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, `@types/node@${typesNode.version}`], project);
}, 180_000);

afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('the packed package', { timeout: 60_000 }, () => {
  it("type-checks the README's Embedding snippet and the uidpush/api-client example in a strict project without skipLibCheck", async () => {
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', project], { cwd: project }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (err: unknown) => {
        const e = err as { code?: number; stdout?: string };
        return { code: e.code ?? -1, stdout: e.stdout ?? '' };
      },
    );
    expect(result.stdout).toBe('');
    expect(result.code).toBe(0);
  });

  it('installs no @types package of its own: its declarations need only @types/node', async () => {
    const { stdout } = await sh(NPM, ['ls', '--all', '--parseable'], project);
    const types = stdout.split('\n').filter((line) => line.includes('node_modules/@types/'));
    expect(types.map((line) => line.slice(line.indexOf('@types/')))).toEqual(['@types/node']);
  });

  it('serves when imported, loads by require() too, and says its version from the bin', async () => {
    await writeFile(
      join(project, 'serve.js'),
      `import { createServer } from 'uidpush';
import { PushClient } from 'uidpush/api-client';
import { Client } from 'uidpush/client';
if (typeof Client !== 'function' || Client === PushClient) throw new Error('uidpush/client is not the WebSocket client SDK');
const server = createServer({ port: 0, apiPort: 0 });
const { api } = await server.listen();
const client = new PushClient({ url: \`http://127.0.0.1:\${api.port}\` });
console.log(JSON.stringify(await client.push('nobody', 'hello')));
await server.close();
`,
    );
    await writeFile(
      join(project, 'require.cjs'),
      `const { createServer } = require('uidpush');
const { PushClient } = require('uidpush/api-client');
console.log(typeof createServer, typeof PushClient);
`,
    );
    expect((await sh(process.execPath, ['serve.js'], project)).stdout).toBe('{"online":0,"connections":0}\n');
    expect((await sh(process.execPath, ['require.cjs'], project)).stdout).toBe('function function\n');
    const bin = join(project, 'node_modules/.bin/uidpush');
    expect((await sh(bin, ['--version'], project)).stdout).toBe(`${manifest.version}\n`);
  });
});

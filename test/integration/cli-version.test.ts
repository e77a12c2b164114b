import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const manifest = JSON.parse(await readFile(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };

describe('uidpush --version', { timeout: 30_000 }, () => {
  it.each(['--version', '-v'])("prints package.json's version with %s and exits 0", async (flag) => {
    const { code, stdout, stderr } = await runCli([flag]);
    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: `${manifest.version}\n`, stderr: '' });
  });

  it('is listed in the usage', async () => {
    const { stdout } = await runCli(['--help']);
    expect(stdout).toMatch(/^ {2}-v, --version +print the version$/m);
  });
});

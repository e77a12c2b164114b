import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode, ProgramErrorCode } from '../../src/index.js';

const root = join(import.meta.dirname, '../..');

describe('docs/errors.md', () => {
  it('documents every client error code, program error code and close code', async () => {
    const doc = await readFile(join(root, 'docs/errors.md'), 'utf8');
    for (const code of Object.values(ErrorCode)) expect(doc).toContain(`| \`${code}\` |`);
    for (const code of Object.values(ProgramErrorCode)) expect(doc).toContain(`| \`${code}\` |`);
    for (const [name, code] of Object.entries(CloseCode)) {
      expect(doc).toContain(`| ${code} | \`${name}\` |`);
    }
  });

  it('documents every error code that appears in the source', async () => {
    const doc = await readFile(join(root, 'docs/errors.md'), 'utf8');
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(join(root, 'src'), { recursive: true })).filter((f) =>
      f.endsWith('.ts'),
    );
    for (const file of files) {
      const text = await readFile(join(root, 'src', file), 'utf8');
      for (const [code] of text.matchAll(/UIDPUSH_ERR_[A-Z_]+/g)) {
        expect(doc, `${code} used in src/${file}`).toContain(code);
      }
    }
  });
});

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

describe('docs/protocol.md', () => {
  it('documents every error code and close code used in src/', async () => {
    const doc = await readFile(join(root, 'docs/protocol.md'), 'utf8');
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(join(root, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
    const used = new Set<string>();
    for (const file of files) {
      const text = await readFile(join(root, 'src', file), 'utf8');
      for (const [, name] of text.matchAll(/ErrorCode\.(\w+)/g)) {
        const code = (ErrorCode as Record<string, string>)[name ?? ''];
        // Only client-protocol codes belong here; the server API's own are in http-api.md.
        if (code !== undefined && !API_ONLY.has(code)) used.add(`| \`${code}\` |`);
      }
      for (const [, name] of text.matchAll(/CloseCode\.(\w+)/g)) {
        const code = (CloseCode as Record<string, number>)[name ?? ''];
        if (code !== undefined) used.add(`| ${code} |`);
      }
    }
    expect(used.size).toBeGreaterThan(10);
    for (const row of used) expect(doc, `missing row ${row}`).toContain(row);
  });

  it('names every client frame type of the schema', async () => {
    const doc = await readFile(join(root, 'docs/protocol.md'), 'utf8');
    for (const type of ['auth', 'send', 'publish', 'broadcast', 'join', 'leave', 'ping']) {
      expect(doc).toContain(`| \`${type}\` |`);
    }
    for (const type of ['welcome', 'message', 'ack', 'error', 'pong']) expect(doc).toContain(`| \`${type}\` |`);
  });
});

const API_ONLY = new Set(['not_found', 'method_not_allowed', 'unsupported_media_type', 'request_timeout', 'internal']);

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultText, optionEntries, optionsHelp, withGeneratedTables } from '../../src/cli/options-doc.js';
import { loadServeConfig } from '../../src/cli/config.js';
import { optionDocs, resolveServerOptions, serverOptionFields } from '../../src/server/options.js';

const README = join(import.meta.dirname, '../../README.md');

/** The rows of the README's option tables, by option name or CLI flag. */
function readmeRows(readme: string): Map<string, { flag: string; env: string; default: string; meaning: string }> {
  const rows = new Map<string, { flag: string; env: string; default: string; meaning: string }>();
  for (const line of readme.split('\n')) {
    const match = /^\| (`\w+`|\(CLI\)) \| `(--[\w-]+)` \/ `(\w+)` \| (.*?) \| (.*) \|$/.exec(line);
    if (match === null) continue;
    const [, option = '', flag = '', env = '', dflt = '', meaning = ''] = match;
    rows.set(option === '(CLI)' ? flag : option.slice(1, -1), { flag, env, default: dflt, meaning });
  }
  return rows;
}

describe('option documentation', () => {
  it('documents every field of the options schema', () => {
    for (const [key, schema] of Object.entries(serverOptionFields.shape)) {
      expect(optionDocs.get(schema), `${key} has no .register(optionDocs, ...)`).toBeDefined();
    }
  });

  it('lists every option in the README tables with its flag, variable, default and meaning', async () => {
    const rows = readmeRows(await readFile(README, 'utf8'));
    const entries = optionEntries();
    expect(entries.length).toBeGreaterThan(45);
    for (const e of entries) {
      const row = rows.get(e.cliOnly ? e.flag : e.key);
      expect(row, `README has no row for ${e.key}`).toBeDefined();
      expect(row).toEqual({ flag: e.flag, env: e.env, default: defaultText(e), meaning: e.doc.description });
    }
    expect(rows.size).toBe(entries.length);
  });

  it('keeps the README tables exactly as npm run docs:options generates them', async () => {
    const readme = await readFile(README, 'utf8');
    expect(withGeneratedTables(readme), 'README.md tables are stale: run npm run docs:options').toBe(readme);
  });

  it('shows in --help each flag with its variable, unit and default, within 100 columns', () => {
    const help = optionsHelp();
    for (const line of help.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    expect(help).toContain('  --max-message-size <bytes>  (UIDPUSH_MAX_MESSAGE_SIZE)');
    expect(help).toContain('Default: 1048576 bytes (1 MiB).');
    expect(help).toContain('  --heartbeat-interval <ms>  (UIDPUSH_HEARTBEAT_INTERVAL)');
    expect(help).toMatch(/Default:\s+2\s+x\s+--heartbeat-interval\s+\+\s+10\s+s\s+\(60000\)\./);
    expect(help).toContain('  --api-port <port|off>  (UIDPUSH_API_PORT)');
    expect(help).toMatch(/Default:\s+1235\s+\(embedded:\s+off\)\./);
    for (const e of optionEntries()) expect(help).toContain(`  ${e.flag}`);
  });
});

describe('the server API default', () => {
  it('is 1235 for uidpush serve, off with --api-port off, and off for createServer', async () => {
    expect((await loadServeConfig({}, {})).server.apiPort).toBe(1235);
    expect((await loadServeConfig({ 'api-port': 'off' }, {})).server.apiPort).toBeNull();
    expect((await loadServeConfig({}, { UIDPUSH_API_PORT: '0' })).server.apiPort).toBe(0);
    expect(resolveServerOptions({}).apiPort).toBeNull();
  });
});

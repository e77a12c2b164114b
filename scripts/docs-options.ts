// Rewrites the README's configuration tables from the options schema (src/server/options.ts):
// `npm run docs:options`. test/unit/options-doc.test.ts fails while the README differs.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withGeneratedTables } from '../src/cli/options-doc.js';

const path = join(import.meta.dirname, '../README.md');
const before = await readFile(path, 'utf8');
const after = withGeneratedTables(before);
if (after === before) {
  process.stdout.write('README.md: option tables up to date\n');
} else {
  await writeFile(path, after);
  process.stdout.write('README.md: option tables rewritten\n');
}

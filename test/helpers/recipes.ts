import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

/** A fenced block of a doc: its language (after the fence) and its text. */
export interface Recipe {
  lang: string;
  text: string;
}

/**
 * The fenced block that follows `<!-- recipe: <name> -->` in `doc` (a path from the repository
 * root), read at test time: the doc is what a test runs, so the two cannot drift apart.
 */
export async function recipe(doc: string, name: string): Promise<Recipe> {
  const text = await readFile(join(root, doc), 'utf8');
  const marker = `<!-- recipe: ${name} -->`;
  const at = text.indexOf(marker);
  if (at === -1) throw new Error(`${doc} has no "${marker}"`);
  const block = /^```(\w*)\n([\s\S]*?)^```$/m.exec(text.slice(at + marker.length));
  if (block === null) throw new Error(`${doc}: no fenced block after "${marker}"`);
  return { lang: block[1] ?? '', text: block[2] ?? '' };
}

/**
 * `text` with every `from` replaced by its `to`; throws when one is missing, so a doc that
 * drops an example value fails the test by name instead of running unchanged.
 */
export function substitute(text: string, replacements: readonly (readonly [string, string])[]): string {
  let out = text;
  for (const [from, to] of replacements) {
    if (!out.includes(from)) throw new Error(`the recipe no longer contains "${from}"`);
    out = out.replaceAll(from, to);
  }
  return out;
}

/** The shell commands of a block: comments dropped, backslash-continued lines joined. */
export function commands(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.replace(/(^|\s)#.*$/, '').trim())
    .filter((line) => line !== '');
}

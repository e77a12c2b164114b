import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { TestClient } from './clients.js';

const root = join(import.meta.dirname, '../..');
const MAIN = join(root, 'src/cli/main.ts');

/** A fenced block of a doc: its language (after the fence) and its text. */
export interface Recipe {
  lang: string;
  text: string;
}

/**
 * The fenced block that follows `<!-- recipe: <name> -->` (or `<!-- recipe: <name> (a note)
 * -->`) in `doc`, a path from the repository root, read at test time: the doc is what a
 * test runs, so the two cannot drift apart.
 */
export async function recipe(doc: string, name: string): Promise<Recipe> {
  const text = await readFile(join(root, doc), 'utf8');
  const marker = `<!-- recipe: ${name} `;
  const at = text.indexOf(marker);
  if (at === -1) throw new Error(`${doc} has no "${marker}-->"`);
  const end = text.indexOf('-->', at);
  const block = /^```(\w*)\n([\s\S]*?)^```$/m.exec(text.slice(end));
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

/** One shell command of a block and the comment after it (often its documented output). */
export interface ShellLine {
  command: string;
  comment: string;
}

/**
 * The commands of a shell block, backslash-continued lines joined, each with its trailing
 * comment; whole-line comments are dropped. A `#` after a space starts a comment even in
 * quotes, which no recipe of ours needs.
 */
export function shellLines(text: string): ShellLine[] {
  return text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => {
      const hash = /(^|\s)#/.exec(line);
      const at = hash === null ? line.length : hash.index + (hash[1] ?? '').length;
      return { command: line.slice(0, at).trim(), comment: line.slice(at + 1).trim() };
    })
    .filter((line) => line.command !== '');
}

/** The commands of a shell block, without their comments. */
export function commands(text: string): string[] {
  return shellLines(text).map((line) => line.command);
}

/**
 * Writes an `uidpush` command into `<dir>/bin` that runs this checkout's CLI from source,
 * and returns a PATH with it first: the docs' `uidpush ...` (and `npx uidpush ...`, once
 * `npx ` is dropped) then run as written, without a build.
 */
export async function uidpushOnPath(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  await writeFile(join(bin, 'uidpush'), `#!/bin/sh\nexec "${process.execPath}" --import tsx "${MAIN}" "$@"\n`);
  await chmod(join(bin, 'uidpush'), 0o755);
  return `${bin}:${process.env.PATH ?? ''}`;
}

/** What a recipe test started: processes, clients and temp dirs, all ended by {@link end}. */
export class Leftovers {
  readonly children: ChildProcess[] = [];
  readonly clients: TestClient[] = [];
  readonly dirs: string[] = [];

  /** Closes the clients, SIGKILLs the processes still running (waiting for each), removes the dirs. */
  async end(): Promise<void> {
    for (const c of this.clients.splice(0)) c.close();
    for (const child of this.children.splice(0)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    for (const dir of this.dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  }
}

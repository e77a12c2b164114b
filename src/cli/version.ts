import { readFileSync } from 'node:fs';

/**
 * The version of the installed package, read from the package.json two levels above this
 * file: src/cli/ in the repository and dist/cli/ in an install are both that deep, and
 * reading it at run time keeps one source of truth (nothing to bump at build time).
 */
export function packageVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  if (typeof manifest !== 'object' || manifest === null || !('version' in manifest) || typeof manifest.version !== 'string') {
    throw new Error('package.json has no version');
  }
  return manifest.version;
}

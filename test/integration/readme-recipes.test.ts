import { execFile, spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type TestClient } from '../helpers/clients.js';
import { Leftovers, recipe, shellLines, uidpushOnPath } from '../helpers/recipes.js';

// The README's quick start, run from the README at test time. `npm start` is
// `uidpush serve` with the defaults, but on free ports: 1234/1235 may be a running server's.

const ROOT = join(import.meta.dirname, '../..');
const run = promisify(execFile);
const leftovers = new Leftovers();
const { children, clients, dirs } = leftovers;

afterEach(async () => {
  await leftovers.end();
});

/** `uidpush serve` with the defaults but free ports, as the quick start's `npm start`. */
async function serve(path: string): Promise<{ ws: string; api: string }> {
  const child = spawn('uidpush', ['serve', '--port', '0', '--api-port', '0'], {
    cwd: ROOT,
    env: { ...process.env, PATH: path },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      if (!text.startsWith('{')) return;
      const entry = JSON.parse(text) as { msg?: string; port: number; api: { port: number } };
      if (entry.msg === 'listening') resolve({ ws: `ws://127.0.0.1:${entry.port}`, api: `http://127.0.0.1:${entry.api.port}` });
    });
    child.once('exit', (code) => {
      reject(new Error(`uidpush serve exited with ${String(code)}`));
    });
  });
}

async function client(url: string): Promise<TestClient> {
  const c = await connect(url);
  clients.push(c);
  return c;
}

describe('the README quick start', { timeout: 60_000 }, () => {
  it('pushes with curl and the CLI and prints the documented answers', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uidpush-readme-'));
    dirs.push(dir);
    const path = await uidpushOnPath(dir);
    const server = await serve(path);
    const alice = await (await client(server.ws)).login('alice');
    const lines = shellLines((await recipe('README.md', 'quick-push')).text);
    expect(lines.length).toBeGreaterThan(3);
    for (const { command, comment } of lines) {
      // `npx uidpush` finds this package's bin once built; the source CLI stands in for it.
      const line = command.replaceAll('http://127.0.0.1:1235', server.api).replace(/^npx uidpush /, 'uidpush ');
      const { stdout } = await run('sh', ['-c', line], { cwd: ROOT, env: { ...process.env, PATH: path, UIDPUSH_API_URL: server.api } });
      // A comment that is JSON is the documented output.
      if (comment.startsWith('{')) expect(JSON.parse(stdout), line).toEqual(JSON.parse(comment));
      else expect(() => JSON.parse(stdout) as unknown, line).not.toThrow();
    }
    // What alice received, in order: both pushes, the JSON one, the broadcast.
    expect([await alice.next(), await alice.next(), await alice.next(), await alice.next()]).toEqual([
      'your order shipped',
      'your order shipped',
      '{"type":"sale"}',
      'maintenance at 22:00',
    ]);
  });

  it('answers the wscat session as the README shows it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uidpush-readme-'));
    dirs.push(dir);
    const server = await serve(await uidpushOnPath(dir));
    const session = (await recipe('README.md', 'wscat')).text.split('\n').filter((l) => l !== '');
    const terminals = new Map<string, TestClient>();
    for (const line of session) {
      const step = /^terminal (\d+) ([<>]) (.*)$/.exec(line);
      if (step === null) throw new Error(`not a wscat step: ${line}`);
      const [, name = '', way, text = ''] = step;
      let c = terminals.get(name);
      if (c === undefined) {
        c = await client(server.ws);
        terminals.set(name, c);
      }
      if (way === '>') c.send(text);
      else expect(await c.next(), line).toBe(text);
    }
  });
});

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApi } from '../../src/api/http.js';
import { PushClient } from '../../src/api-client/index.js';
import { CloseCode, createServer, ErrorCode, ProgramErrorCode } from '../../src/index.js';

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
    const files = (await readdir(join(root, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
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

/**
 * The routes the server API registers, as `METHOD /path` with `{param}`s: the API of a
 * real server (its defaults), listening on a free port; paths and methods read from
 * fastify's route table, and a method kept where it is served (the others of each path
 * answer 405, which a request to each tells).
 */
async function apiRoutes(): Promise<string[]> {
  const server = createServer({ port: 0, apiPort: null });
  const o = server.options;
  const app = createApi({
    service: server,
    metrics: server.metrics,
    apiKey: undefined,
    maxUids: o.apiMaxUids,
    maxUidLength: o.maxUidLength,
    maxJsonDepth: o.maxJsonDepth,
    bodyLimit: o.apiBodyLimit,
    limits: { headersTimeout: 1000, requestTimeout: 1000, keepAliveTimeout: 1000, maxConnections: 10 },
    logger: { debug() {}, info() {}, warn() {}, error() {} },
  });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${String((app.server.address() as { port: number }).port)}`;
    // One line per path segment, indented four characters per level under its parent.
    const stack: string[] = [];
    const routes: string[] = [];
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^([│ ]*)[├└]── (\S+) \(([^)]+)\)$/.exec(line);
      if (m === null) continue;
      const depth = (m[1] ?? '').length / 4;
      stack.length = depth;
      stack.push(m[2] ?? '');
      const url = stack.join('');
      for (const method of (m[3] ?? '').split(', ')) {
        if (method === 'HEAD' || method === 'OPTIONS') continue;
        const path = url.replace(/:(\w+)/g, (_all, name: string) => (name === 'group' ? 'news' : 'alice'));
        const res = await fetch(base + path, { method });
        await res.arrayBuffer();
        if (res.status !== 405) routes.push(`${method} ${url.replace(/:(\w+)/g, '{$1}')}`);
      }
    }
    return routes;
  } finally {
    await app.close();
  }
}

describe('docs/http-api.md', () => {
  it('has a section for every route the server API registers, and none for a route it does not', async () => {
    const doc = await readFile(join(root, 'docs/http-api.md'), 'utf8');
    const routes = await apiRoutes();
    expect(routes).toContain('DELETE /v1/users/{uid}/groups');
    expect(routes).toContain('PUT /v1/groups/{group}/members/{uid}');
    const headings = doc.split('\n').filter((l) => l.startsWith('### '));
    const documented = new Set(headings.flatMap((h) => [...h.matchAll(/`([A-Z]+ \/[^`?]*)[`?]/g)].map((m) => m[1])));
    for (const route of routes) expect(documented, `no section for ${route}`).toContain(route);
    for (const route of documented) expect(routes, `a section for ${String(route)}, which is not a route`).toContain(route);
  });

  it('lists every public method of PushClient', async () => {
    const doc = await readFile(join(root, 'docs/http-api.md'), 'utf8');
    const methods = Object.getOwnPropertyNames(PushClient.prototype).filter((name) => name !== 'constructor');
    expect(methods).toContain('removeFromAllGroups');
    for (const name of methods) expect(doc, `PushClient.${name} is not in the method table`).toMatch(new RegExp(`^\\| \`${name}\\(`, 'm'));
  });
});

/** The folders of src/, and each one's .ts files (paths below the folder). */
async function srcFolders(): Promise<Map<string, string[]>> {
  const { readdir } = await import('node:fs/promises');
  const folders = new Map<string, string[]>();
  for (const entry of await readdir(join(root, 'src'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const files = (await readdir(join(root, 'src', entry.name), { recursive: true })).filter((f) => f.endsWith('.ts'));
    folders.set(entry.name, files);
  }
  return folders;
}

/** What eslint.config.js lets each folder import: `layer('<dir>', [<allowed>])`, or with extra rules after the list. */
async function allowedImports(): Promise<Map<string, string[]>> {
  const config = await readFile(join(root, 'eslint.config.js'), 'utf8');
  const allowed = new Map<string, string[]>();
  for (const [, dir, list] of config.matchAll(/layer\('([\w-]+)', \[([^\]]*)\][,)]/g)) {
    allowed.set(
      dir ?? '',
      [...(list ?? '').matchAll(/'([\w-]+)'/g)].map((m) => m[1] ?? ''),
    );
  }
  return allowed;
}

describe('docs/architecture.md and the README Layout', () => {
  it('describe every folder and file of src/, with the imports eslint.config.js allows', async () => {
    const doc = await readFile(join(root, 'docs/architecture.md'), 'utf8');
    const folders = await srcFolders();
    const allowed = await allowedImports();
    expect(folders.size).toBeGreaterThan(10);
    expect([...allowed.keys()].sort(), 'every folder has a layer rule in eslint.config.js').toEqual([...folders.keys()].sort());
    for (const [folder, files] of folders) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`src/${folder}\` |`));
      expect(row, `no row for src/${folder}`).toBeDefined();
      const [, mayImport = '', described = ''] = (row ?? '').split(' | ');
      for (const file of files) expect(described, `src/${folder}/${file} is not described`).toContain(`\`${file}\``);
      const others = [...folders.keys()].filter((f) => f !== folder);
      const except = /^all but (.*)$/.exec(mayImport);
      const documented =
        mayImport === 'nothing'
          ? []
          : mayImport === 'all'
            ? others
            : except !== null
              ? others.filter((f) => !(except[1] ?? '').includes(`\`${f}\``))
              : [...mayImport.matchAll(/`(\w+)`/g)].map((m) => m[1] ?? '');
      expect(documented.sort(), `src/${folder}'s imports`).toEqual([...(allowed.get(folder) ?? [])].sort());
      // The arrows: `<folder> <- <every folder allowed to import it>`.
      const importers = others.filter((f) => allowed.get(f)?.includes(folder) === true);
      const arrow = new RegExp(`^${folder} +<- +(.*)$`, 'm').exec(doc);
      if (importers.length === 0) {
        expect(arrow, `${folder} is imported by no folder, yet has an arrow`).toBeNull();
        continue;
      }
      const listed = arrow?.[1] === 'every other folder' ? others : (arrow?.[1] ?? '').split(', ');
      expect(listed.sort(), `the arrow into ${folder}`).toEqual(importers.sort());
    }
  });

  it('the README Layout names every folder of src/', async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('## Layout\n');
    expect(start).toBeGreaterThan(-1);
    const end = readme.indexOf('\n## ', start + 1);
    const layout = readme.slice(start, end === -1 ? undefined : end);
    for (const folder of (await srcFolders()).keys()) expect(layout, `src/${folder}`).toContain(`\`src/${folder}\``);
  });
});

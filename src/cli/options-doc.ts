import type { z } from 'zod';
import { optionDocs, serverOptionFields, type OptionDoc, type OptionSection } from '../server/options.js';
import { envName, flagName, OPTION_KEYS, OPTION_KINDS, SERVE_ONLY_KINDS, serveOnlyFields, type OptionKind } from './config.js';

/** One setting of `uidpush serve`, with everything its documentation shows. */
export interface OptionEntry {
  key: string;
  flag: string;
  env: string;
  kind: OptionKind;
  doc: OptionDoc;
  /** `createServer`'s default (the schema's): undefined when there is none. */
  schemaDefault: unknown;
  /** A server option (a `createServer` option and a config file key), or a CLI-only setting. */
  cliOnly: boolean;
}

const SECTION_TITLES: Record<OptionSection, string> = {
  cli: 'The command',
  websocket: 'WebSocket listener',
  limits: 'Limits',
  liveness: 'Timeouts and liveness',
  api: 'HTTP server API',
  inner: 'Inner text port',
  groups: 'Groups',
  inbox: 'Inbox (docs/delivery.md)',
  auth: 'Tokens, rights and origins',
  cluster: 'Clusters',
};

function entry(key: string, schema: z.ZodType, kind: OptionKind, cliOnly: boolean): OptionEntry {
  const doc = optionDocs.get(schema);
  // A test checks every field is documented; this is for the one added without it.
  if (doc === undefined) throw new Error(`option ${key} has no optionDocs entry (src/server/options.ts)`);
  return { key, flag: `--${flagName(key)}`, env: envName(key), kind, doc, schemaDefault: schema.safeParse(undefined).data, cliOnly };
}

/** Every setting of `uidpush serve`: the server options in the schema's order, then the CLI's own. */
export function optionEntries(): OptionEntry[] {
  const server = OPTION_KEYS.map((k) => entry(k, serverOptionFields.shape[k], OPTION_KINDS[k], false));
  const own = (Object.keys(SERVE_ONLY_KINDS) as (keyof typeof SERVE_ONLY_KINDS)[]).map((k) =>
    entry(k, serveOnlyFields.shape[k], SERVE_ONLY_KINDS[k], k !== 'logLevel'),
  );
  return [...server, ...own];
}

function duration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0 && ms >= 120_000) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

function size(bytes: number): string | undefined {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return undefined;
}

function valueText(value: unknown, unit: OptionDoc['unit']): string {
  if (value === undefined) return 'none';
  if (value === null) return 'off';
  if (typeof value === 'string' || typeof value === 'boolean') return `\`${String(value)}\``;
  if (typeof value !== 'number') return `\`${JSON.stringify(value)}\``;
  if (unit === 'ms') return `\`${value}\` ms${value >= 1000 ? ` (${duration(value)})` : ''}`;
  if (unit === 'bytes') {
    const human = size(value);
    return `\`${value}\` bytes${human === undefined ? '' : ` (${human})`}`;
  }
  if (unit === 'per second') return `\`${value}\` per second`;
  return `\`${value}\``;
}

/** The default as the docs show it (Markdown): words where set, else the value with its unit. */
export function defaultText(e: OptionEntry): string {
  if (e.doc.default !== undefined) return e.doc.default;
  const shown = valueText(e.schemaDefault, e.doc.unit);
  if (e.doc.cliDefault === undefined) return shown;
  return `${valueText(e.doc.cliDefault, e.doc.unit)} (embedded: ${shown})`;
}

/** The flag's value as --help shows it. */
function argText(e: OptionEntry): string {
  if (e.doc.arg !== undefined) return e.doc.arg;
  switch (e.kind) {
    case 'boolean':
      return '';
    case 'number':
      return e.doc.unit === 'ms' ? '<ms>' : e.doc.unit === 'bytes' ? '<bytes>' : '<n>';
    case 'port-or-off':
      return '<port|off>';
    case 'list':
      return '<a,b,...>';
    case 'string':
      return '<text>';
  }
}

/** Markdown to terminal text: a code span naming an option becomes its flag; others lose their backticks. */
function plain(markdown: string, flags: ReadonlyMap<string, string>): string {
  return markdown.replace(/`([^`]+)`/g, (_m, inner: string) => flags.get(inner) ?? inner);
}

function wrap(text: string, indent: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w.length > 0)) {
    if (line !== '' && indent + line.length + 1 + word.length > width) {
      lines.push(' '.repeat(indent) + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(' '.repeat(indent) + line);
  return lines;
}

/**
 * The options part of `uidpush serve --help`, by section: each flag with its value, its
 * variable, its meaning and its default, wrapped at `width` columns.
 */
export function optionsHelp(width = 100): string {
  const entries = optionEntries();
  const flags = new Map(entries.map((e) => [e.key, e.flag]));
  const out: string[] = [];
  for (const section of Object.keys(SECTION_TITLES) as OptionSection[]) {
    const inSection = entries.filter((e) => e.doc.section === section);
    if (inSection.length === 0) continue;
    out.push('', `${SECTION_TITLES[section]}:`);
    for (const e of inSection) {
      const arg = argText(e);
      out.push(`  ${e.flag}${arg === '' ? '' : ` ${arg}`}  (${e.env})`);
      out.push(...wrap(`${plain(e.doc.description, flags)} Default: ${plain(defaultText(e), flags)}.`, 6, width));
    }
  }
  return out.join('\n');
}

/** The README tables generated from the options: `configuration` (all but clusters) and `clusters`. */
export type ReadmeTable = 'configuration' | 'clusters';

/** One README table in Markdown: option | flag / variable | default | meaning. */
export function readmeTable(table: ReadmeTable): string {
  const rows = optionEntries()
    .filter((e) => (e.doc.section === 'cluster') === (table === 'clusters'))
    // The CLI's own settings close their table.
    .sort((a, b) => Number(a.cliOnly || a.doc.section === 'cli') - Number(b.cliOnly || b.doc.section === 'cli'))
    .map((e) => {
      const option = e.cliOnly ? '(CLI)' : `\`${e.key}\``;
      const cell = (text: string): string => text.replace(/\|/g, '\\|');
      return `| ${option} | \`${e.flag}\` / \`${e.env}\` | ${cell(defaultText(e))} | ${cell(e.doc.description)} |`;
    });
  return ['| option | flag / variable | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

const begin = (table: ReadmeTable): string => `<!-- options:${table} (generated by npm run docs:options from src/server/options.ts) -->`;
const end = (table: ReadmeTable): string => `<!-- /options:${table} -->`;

/**
 * The README with each generated table replaced between its markers.
 *
 * @throws Error when a table's markers are missing.
 */
export function withGeneratedTables(readme: string): string {
  let text = readme;
  for (const table of ['configuration', 'clusters'] as const) {
    const from = text.indexOf(begin(table));
    const to = text.indexOf(end(table));
    if (from === -1 || to < from) throw new Error(`README.md: markers of the ${table} table not found`);
    text = `${text.slice(0, from)}${begin(table)}\n${readmeTable(table)}\n${text.slice(to)}`;
  }
  return text;
}

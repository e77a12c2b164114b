import type { Logger } from '../../src/index.js';

/** One warning a {@link warningLog} kept: its message and the fields logged with it. */
export interface Warning {
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every warning (and drops the other levels), for a test to read. */
export function warningLog(): { logger: Logger; warnings: Warning[] } {
  const warnings: Warning[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    error() {},
    warn(fields: object, msg?: string) {
      warnings.push({ msg: msg ?? '', fields: fields as Record<string, unknown> });
    },
  };
  return { logger, warnings };
}

/** One line a {@link recordingLog} kept. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
}

/**
 * A logger that keeps every line of every level; `line(msg, fields)` resolves with the first
 * line of that message whose fields include `fields`, as soon as it is logged.
 */
export function recordingLog(): {
  logger: Logger;
  lines: LogLine[];
  line: (msg: string, fields?: Record<string, unknown>, timeoutMs?: number) => Promise<LogLine>;
} {
  const lines: LogLine[] = [];
  const waiters = new Set<() => void>();
  const keep =
    (level: LogLine['level']) =>
    (fields: object, msg?: string): void => {
      lines.push({ level, msg: msg ?? '', fields: fields as Record<string, unknown> });
      for (const wake of [...waiters]) wake();
    };
  const logger: Logger = { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
  const matches = (l: LogLine, msg: string, fields: Record<string, unknown>): boolean =>
    l.msg === msg && Object.entries(fields).every(([k, v]) => l.fields[k] === v);
  const line = (msg: string, fields: Record<string, unknown> = {}, timeoutMs = 5000): Promise<LogLine> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = lines.find((l) => matches(l, msg, fields));
        if (found === undefined) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no '${msg}' line with ${JSON.stringify(fields)} in ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) waiters.add(check);
    });
  return { logger, lines, line };
}

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

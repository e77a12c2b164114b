import { readFileSync } from 'node:fs';

/**
 * The soft limit on this process's open files, from a `/proc/<pid>/limits` text; undefined
 * when it is unlimited or the line is missing.
 */
export function parseOpenFileLimit(limits: string): number | undefined {
  const match = /^Max open files\s+(\d+)\s/m.exec(limits);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** This process's soft limit on open files (Linux); undefined where it cannot be read. */
export function openFileLimit(): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Why the connection caps of the server API and the inner port do not protect the
 * WebSocket port under a file limit of `limit`, or undefined if they do: slow clients may
 * hold every connection a cap allows, and the caps exist so that what is left of the
 * process's descriptors stays for WebSocket clients. Half of them is the line drawn.
 *
 * @param caps - the caps of the listeners that are on.
 */
export function fileLimitWarning(limit: number | undefined, caps: { api?: number; inner?: number }): string | undefined {
  if (limit === undefined) return undefined;
  const held = (caps.api ?? 0) + (caps.inner ?? 0);
  if (held * 2 <= limit) return undefined;
  return (
    `the server API and inner port may hold ${held} connections, more than half of this process's ` +
    `file limit (${limit}): slow clients could leave too few for WebSocket clients; ` +
    'raise ulimit -n or lower --api-max-connections / --inner-max-connections'
  );
}

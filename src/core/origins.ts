/**
 * Who may reach the server through a browser: loopback names, the Host header, and the
 * Origin allow-list of the WebSocket handshake. Pure; parsed once at start.
 */

/** Whether `host` names a loopback address (127.0.0.0/8, ::1, localhost); brackets allowed. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`, as in a Host header or an origin. */
const HOST_PORT = /^(\[[0-9a-f:.]+\]|[^:/[\]\s]+)(?::(\d{1,5}|\*))?$/i;

/** The host name of a Host header (`localhost:1235` -> `localhost`), or undefined if malformed. */
export function hostOfHostHeader(value: string): string | undefined {
  return HOST_PORT.exec(value)?.[1];
}

/** Whether a Host header names a loopback address, whatever its port. */
export function isLoopbackHostHeader(value: string): boolean {
  const host = hostOfHostHeader(value);
  return host !== undefined && isLoopback(host);
}

interface OriginParts {
  scheme: string;
  host: string;
  /** The port as written, '' when none (the scheme's default), '*' in a pattern: any. */
  port: string;
}

const ORIGIN = /^([a-z][a-z0-9+.-]*):\/\/([^/?#\s]+)$/i;

function parseOrigin(text: string): OriginParts | undefined {
  const match = ORIGIN.exec(text);
  const scheme = match?.[1];
  const rest = match?.[2];
  if (scheme === undefined || rest === undefined) return undefined;
  const hostPort = HOST_PORT.exec(rest);
  const host = hostPort?.[1];
  if (host === undefined) return undefined;
  return { scheme: scheme.toLowerCase(), host: host.toLowerCase(), port: hostPort?.[2] ?? '' };
}

/** One entry of `allowedOrigins`, compiled. */
interface OriginPattern {
  scheme: string;
  /** An exact host, or with `suffix` true, what a subdomain's host must end with (`.example.com`). */
  host: string;
  suffix: boolean;
  port: string;
}

/**
 * Compiles `allowedOrigins` entries: `*` (any origin), `null` (the Origin browsers send
 * from sandboxed frames and files), an exact origin (`https://app.example.com`,
 * `http://localhost:8080`), or a pattern with `*.` before the host (any subdomain, not the
 * domain itself) and/or `*` as the port (any port).
 *
 * @returns the matcher, or the first entry that is not one of those.
 */
export function compileOrigins(
  entries: readonly string[],
): { ok: true; allows: (origin: string) => boolean } | { ok: false; entry: string } {
  let any = false;
  let allowNull = false;
  const patterns: OriginPattern[] = [];
  for (const entry of entries) {
    if (entry === '*') {
      any = true;
      continue;
    }
    if (entry === 'null') {
      allowNull = true;
      continue;
    }
    const parts = parseOrigin(entry);
    if (parts === undefined) return { ok: false, entry };
    const suffix = parts.host.startsWith('*.');
    const host = suffix ? parts.host.slice(1) : parts.host;
    // `*` anywhere else in the host (`https://*`, `https://a*.b`) is not a pattern we read.
    if (host.includes('*') || host === '.' || host.length === 0) return { ok: false, entry };
    patterns.push({ scheme: parts.scheme, host, suffix, port: parts.port });
  }
  const allows = (origin: string): boolean => {
    if (any) return true;
    if (origin === 'null') return allowNull;
    const o = parseOrigin(origin);
    if (o === undefined || o.port === '*') return false;
    return patterns.some(
      (p) =>
        p.scheme === o.scheme &&
        (p.port === '*' || p.port === o.port) &&
        (p.suffix ? o.host.endsWith(p.host) && o.host.length > p.host.length : o.host === p.host),
    );
  };
  return { ok: true, allows };
}

/** Origins of pages served from this machine: http(s) on a loopback name, any port. */
function isLoopbackOrigin(origin: string): boolean {
  const o = parseOrigin(origin);
  return o !== undefined && (o.scheme === 'http' || o.scheme === 'https') && o.port !== '*' && isLoopback(o.host);
}

/**
 * Whether a WebSocket handshake with this Origin (undefined: none sent) is accepted.
 * A client without an Origin is not a browser, and nothing stops it from sending any
 * Origin it likes, so it is always accepted: the check keeps other sites' pages out.
 */
export type OriginCheck = (origin: string | undefined) => boolean;

/**
 * The handshake's Origin policy:
 * - `allowedOrigins` set: those (see {@link compileOrigins}), and clients without an Origin;
 * - unset, token auth off: loopback origins only, so a page from another site cannot log
 *   in as any uid on a keyless server;
 * - unset, token auth on: any origin, since a page still needs a token to log in.
 *
 * @throws Error naming the entry when `allowedOrigins` holds one that is not an origin or
 *   pattern (the options schema checks first).
 */
export function originPolicy(allowedOrigins: readonly string[] | undefined, tokenAuth: boolean): OriginCheck {
  if (allowedOrigins === undefined) {
    if (tokenAuth) return () => true;
    return (origin) => origin === undefined || isLoopbackOrigin(origin);
  }
  const compiled = compileOrigins(allowedOrigins);
  if (!compiled.ok) throw new Error(`not an origin or origin pattern: ${compiled.entry}`);
  const { allows } = compiled;
  return (origin) => origin === undefined || allows(origin);
}

/**
 * Whether a keyless server API request may come from a browser page with this Origin
 * (undefined: none sent): only pages served from this machine. Any other page could
 * otherwise send it simple cross-site requests (a form POST to a kick).
 */
export function isLocalOrigin(origin: string | undefined): boolean {
  return origin === undefined || isLoopbackOrigin(origin);
}

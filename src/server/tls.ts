import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isLoopback } from '../core/origins.js';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import type { ResolvedServerOptions } from './options.js';

/** A certificate and its key, read and checked, ready for `setSecureContext`. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint of the (first) certificate, `AB:CD:...`, for the logs. */
  fingerprint256: string;
  /** When the certificate expires, as the certificate says it (`Dec  3 01:23:47 2026 GMT`). */
  validTo: string;
}

/** Where the certificate and key are, when TLS is on. */
export interface TlsPaths {
  tlsCert: string;
  tlsKey: string;
}

/** The TLS paths of `options`, or undefined when TLS is off (the schema sets both or neither). */
export function tlsPaths(options: ResolvedServerOptions): TlsPaths | undefined {
  const { tlsCert, tlsKey } = options;
  return tlsCert === undefined || tlsKey === undefined ? undefined : { tlsCert, tlsKey };
}

/** Whether the server API serves https: with a certificate, per `apiTls`, else off loopback. */
export function apiUsesTls(options: ResolvedServerOptions): boolean {
  return tlsPaths(options) !== undefined && (options.apiTls ?? !isLoopback(options.apiHost));
}

/**
 * Reads the certificate and key at start, synchronously (createServer is).
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_CONFIG naming the option whose file is
 *   unreadable, not PEM, or (the key) not the certificate's.
 */
export function loadTlsSync(paths: TlsPaths): TlsMaterial {
  return check(paths, readOrFail(paths, 'tlsCert', readFileSync), readOrFail(paths, 'tlsKey', readFileSync));
}

/** {@link loadTlsSync}, reading without blocking: for reloads while serving. */
export async function loadTls(paths: TlsPaths): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readOrFailAsync(paths, 'tlsCert'), readOrFailAsync(paths, 'tlsKey')]);
  return check(paths, cert, key);
}

function readOrFail(paths: TlsPaths, field: keyof TlsPaths, read: (path: string) => Buffer): Buffer {
  try {
    return read(paths[field]);
  } catch (err) {
    throw invalid(field, `cannot read ${paths[field]}: ${(err as Error).message}`, err);
  }
}

async function readOrFailAsync(paths: TlsPaths, field: keyof TlsPaths): Promise<Buffer> {
  try {
    return await readFile(paths[field]);
  } catch (err) {
    throw invalid(field, `cannot read ${paths[field]}: ${(err as Error).message}`, err);
  }
}

/**
 * Parses both files on their own first, so the message names the file at fault, then
 * checks the key belongs to the certificate: node would only say `key values mismatch`.
 */
function check(paths: TlsPaths, cert: Buffer, key: Buffer): TlsMaterial {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw invalid('tlsCert', `${paths.tlsCert} is not a PEM certificate: ${(err as Error).message}`, err);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw invalid('tlsKey', `${paths.tlsKey} is not an unencrypted PEM private key: ${(err as Error).message}`, err);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw invalid('tlsKey', `${paths.tlsKey} is not the private key of the certificate in ${paths.tlsCert}`);
  }
  return { cert, key, fingerprint256: x509.fingerprint256, validTo: x509.validTo };
}

// The shape of the schema's messages, so the CLI names the flag and variable beside it.
function invalid(field: keyof TlsPaths, text: string, cause?: unknown): UidpushError {
  return new UidpushError(ProgramErrorCode.InvalidConfig, `invalid configuration:\n  - ${field}: ${text}`, { cause });
}

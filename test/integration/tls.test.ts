import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setImmediate as tick } from 'node:timers/promises';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ProgramErrorCode, UidpushError, type ServerOptions } from '../../src/index.js';
import { resolveServerOptions } from '../../src/server/options.js';
import { apiUsesTls } from '../../src/server/tls.js';
import { runCli } from '../helpers/cli.js';
import { testBed, TestClient } from '../helpers/clients.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');

/** A certificate for 127.0.0.1 and localhost, with its key, made by the openssl CLI. */
interface Cert {
  cert: string;
  key: string;
  fingerprint256: string;
}

let dir = '';
/** Made once: openssl takes tens of ms each, and each test needs only distinct ones. */
const certs: Cert[] = [];

function makeCert(name: string): Cert {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '1',
        '-subj',
        `/CN=uidpush test ${name}`,
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'pipe' },
    );
  } catch (err) {
    // Never skipped: openssl is a Debian base tool, on every machine these tests run on.
    throw new Error(`the TLS tests make their certificates with the openssl CLI: ${(err as Error).message}`, { cause: err });
  }
  const cert = readFileSync(certPath, 'utf8');
  return { cert, key: readFileSync(keyPath, 'utf8'), fingerprint256: new X509Certificate(cert).fingerprint256 };
}

const cert = (i: number): Cert => {
  const c = certs[i];
  if (c === undefined) throw new Error(`no certificate ${i}`);
  return c;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uidpush-tls-'));
  for (let i = 0; i < 3; i++) certs.push(makeCert(`c${i}`));
});

/** Files the server reads, replaced in one rename each, as a renewal tool would. */
interface Served {
  certPath: string;
  keyPath: string;
  install(c: { cert: string; key: string }): void;
}
let served = 0;
function servedFiles(first: Cert): Served {
  const n = served++;
  const certPath = join(dir, `served-${n}.crt`);
  const keyPath = join(dir, `served-${n}.key`);
  const install = (c: { cert: string; key: string }): void => {
    writeFileSync(`${certPath}.new`, c.cert);
    writeFileSync(`${keyPath}.new`, c.key);
    renameSync(`${certPath}.new`, certPath);
    renameSync(`${keyPath}.new`, keyPath);
  };
  install(first);
  return { certPath, keyPath, install };
}

const bed = testBed();
const sockets: Socket[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await bed.cleanup();
});

/** A TLS server of the test bed; `wss` is its URL, `ca` trusts `first`. */
async function setupTls(first: Cert, options: ServerOptions = {}): Promise<{ wss: string; files: Served; api: number }> {
  const files = servedFiles(first);
  const { server } = await bed.setup({ tlsCert: files.certPath, tlsKey: files.keyPath, ...options });
  const address = server.address();
  return { wss: `wss://127.0.0.1:${address.port}`, files, api: address.api?.port ?? 0 };
}

/** The fingerprint of the certificate a new TLS connection to `port` is served. */
async function servedFingerprint(port: number): Promise<string> {
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  sockets.push(socket);
  await once(socket, 'secureConnect');
  const fingerprint = socket.getPeerCertificate().fingerprint256;
  socket.destroy();
  return fingerprint;
}

const portOf = (url: string): number => Number(new URL(url).port);

async function seed(wss: string, uid: string, ca: string): Promise<TestClient> {
  return bed.client(wss, uid, { ca });
}
async function v1(wss: string, uid: string, ca: string): Promise<TestClient> {
  return bed.v1(wss, uid, { ca });
}

/** An HTTP API call, over http or https (trusting `ca`). */
async function apiCall(url: string, body?: unknown, ca?: string): Promise<{ status: number; json: unknown }> {
  if (ca === undefined) {
    const res = await fetch(
      url,
      body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    );
    return { status: res.status, json: await res.json() };
  }
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { ca, method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('TLS on the WebSocket port', () => {
  it('serves wss:// to both protocols, and a push from the server API reaches them', async () => {
    const { wss, api } = await setupTls(cert(0));
    expect(bed.started().server.address()).toMatchObject({ tls: true, api: { tls: false } });
    const alice = await seed(wss, 'alice', cert(0).cert);
    const bob = await v1(wss, 'bob', cert(0).cert);
    // The API stays http on loopback.
    const pushed = await apiCall(`http://127.0.0.1:${api}/v1/push`, { uids: ['alice', 'bob'], data: 'over tls' });
    expect(pushed).toEqual({ status: 200, json: { online: 2, connections: 2 } });
    expect(await alice.next()).toBe('over tls');
    expect(await bob.nextJson()).toMatchObject({ type: 'message', data: 'over tls' });
    // Clients talk to each other over it too.
    bob.sendJson({ type: 'send', to: 'alice', data: 'hi' });
    expect(await alice.next()).toBe('hi');
  });

  it('refuses a plain ws:// client: the handshake fails and no connection opens', async () => {
    const { wss } = await setupTls(cert(0));
    const plain = bed.track(new TestClient(wss.replace('wss:', 'ws:')));
    expect(await plain.closed()).toBe(1006);
    expect(bed.started().server.openConnections).toBe(0);
  });

  it('drops a client that opens TCP and never finishes the TLS handshake, within loginTimeout', async () => {
    const { wss } = await setupTls(cert(0), { loginTimeout: 300 });
    const socket = createConnection({ host: '127.0.0.1', port: portOf(wss) });
    sockets.push(socket);
    socket.on('error', () => {
      // A reset is one way of being dropped; 'close' follows.
    });
    await once(socket, 'connect');
    // Read, or the server's close would go unnoticed.
    socket.resume();
    const opened = Date.now();
    // Half a ClientHello's record header: the handshake starts and never ends.
    socket.write(Buffer.from([0x16, 0x03, 0x01]));
    await once(socket, 'close');
    const held = Date.now() - opened;
    expect(held).toBeGreaterThanOrEqual(250);
    expect(held).toBeLessThan(1500); // node's default would hold it 120 s
  });

  it('keeps the pre-login receive limit, the per-IP cap and the close grace over TLS', async () => {
    const { wss } = await setupTls(cert(0), { maxPreLoginMessageSize: 256, maxConnectionsPerIp: 2, loginTimeout: 200, closeGrace: 100 });
    const ca = cert(0).cert;
    // The receive limit lives in ws's receiver, above the socket: 1009 before login.
    const big = bed.track(new TestClient(wss, { ca }));
    await big.open();
    big.send('x'.repeat(1000));
    expect(await big.closed()).toBe(1009);
    // The per-IP cap reads remoteAddress, which a TLSSocket carries: the third is 429.
    const first = await seed(wss, 'one', ca);
    await seed(wss, 'two', ca);
    const third = new WebSocket(wss, { ca });
    const refused = new Promise<string>((resolve) => {
      third.once('error', (err) => {
        resolve(err.message);
      });
    });
    expect(await refused).toBe('Unexpected server response: 429');
    const firstClosed = once(bed.started().server, 'close');
    first.close();
    await firstClosed;
    expect(bed.started().server.openConnections).toBe(1);
    // A client past the 101 that ignores the close frame of the login timeout: its TLS
    // socket is destroyed once closeGrace is over.
    const raw: TLSSocket = tlsConnect({ host: '127.0.0.1', port: portOf(wss), ca });
    sockets.push(raw);
    raw.on('error', () => {});
    await once(raw, 'secureConnect');
    raw.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    // Read (or the end would go unnoticed), but never answer.
    raw.resume();
    const upgraded = Date.now();
    const closed = once(raw, 'close');
    raw.on('end', () => {
      // Keep our side open: only the server's destroy ends it.
    });
    await closed;
    expect(Date.now() - upgraded).toBeLessThan(200 + 100 + 1000);
    expect(bed.started().server.stats()).toMatchObject({ closeGraceTerminations: 1 });
  });

  it('closes a wss client that stops reading at maxBufferedBytes: the cap counts what waits in the TLS socket', async () => {
    await setupTls(cert(0), { maxBufferedBytes: 256 * 1024 });
    const { server } = bed.started();
    const wss = `wss://127.0.0.1:${server.address().port}`;
    const slow = await seed(wss, 'slow', cert(0).cert);
    let bufferedAtClose = -1;
    server.on('slowConsumer', (conn) => {
      bufferedAtClose = conn.bufferedBytes;
    });
    slow.ws.pause();
    const chunk = 'y'.repeat(16 * 1024);
    let pushes = 0;
    // Bounded: 8,000 x 16 KiB = 125 MiB at most, far past any loopback socket buffer.
    while (server.local.isOnline('slow') && pushes < 8000) {
      void server.push('slow', chunk);
      pushes++;
      await tick();
    }
    expect(server.local.isOnline('slow')).toBe(false);
    expect(bufferedAtClose).toBeGreaterThan(0);
    expect(bufferedAtClose).toBeLessThanOrEqual(256 * 1024);
    slow.ws.resume();
    expect(await slow.closed(5000)).toBe(4001);
  });
});

describe('reloading the certificate', () => {
  it('reloadTls() serves the new certificate to new connections and keeps the open ones', async () => {
    const { wss, files, api } = await setupTls(cert(0));
    const old = await seed(wss, 'old', cert(0).cert);
    expect(await servedFingerprint(portOf(wss))).toBe(cert(0).fingerprint256);
    files.install(cert(1));
    const reloaded = await bed.started().server.reloadTls();
    expect(reloaded.fingerprint256).toBe(cert(1).fingerprint256);
    expect(await servedFingerprint(portOf(wss))).toBe(cert(1).fingerprint256);
    // A client that trusts only the new certificate connects; the old connection is served.
    const fresh = await v1(wss, 'fresh', cert(1).cert);
    await apiCall(`http://127.0.0.1:${api}/v1/broadcast`, { data: 'after reload' });
    expect(await old.next()).toBe('after reload');
    expect(await fresh.nextJson()).toMatchObject({ data: 'after reload' });
    old.send('fresh:from the old connection');
    expect(await fresh.nextJson()).toMatchObject({ data: 'from the old connection' });
  });

  it('a bad file on reload is refused, naming it, and the certificate in use stays', async () => {
    const { wss, files } = await setupTls(cert(0));
    const reload = (): Promise<unknown> => bed.started().server.reloadTls();
    const refusal = async (): Promise<UidpushError> => {
      const err = await reload().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(err instanceof UidpushError)) throw new Error(`expected a UidpushError, got ${String(err)}`);
      expect(err.code).toBe(ProgramErrorCode.InvalidConfig);
      return err;
    };
    files.install({ cert: cert(1).cert, key: 'not a key' });
    expect((await refusal()).message).toMatch(/tlsKey: .*is not an unencrypted PEM private key/);
    files.install({ cert: cert(1).cert, key: cert(2).key });
    expect((await refusal()).message).toMatch(/tlsKey: .*is not the private key of the certificate/);
    files.install({ cert: '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n', key: cert(1).key });
    expect((await refusal()).message).toMatch(/tlsCert: .*is not a PEM certificate/);
    expect(await servedFingerprint(portOf(wss))).toBe(cert(0).fingerprint256);
    await seed(wss, 'still', cert(0).cert);
  });

  it('reloadTls() without TLS is a bad state', async () => {
    const { server } = await bed.setup();
    await expect(server.reloadTls()).rejects.toMatchObject({ code: ProgramErrorCode.BadState });
  });
});

describe('TLS on the server API', () => {
  it('serves https with apiTls on loopback, and its certificate is reloaded too', async () => {
    const { files, api } = await setupTls(cert(0), { apiTls: true });
    expect(bed.started().server.address().api).toMatchObject({ tls: true });
    expect(await apiCall(`https://127.0.0.1:${api}/healthz`, undefined, cert(0).cert)).toEqual({ status: 200, json: { status: 'ok' } });
    await expect(fetch(`http://127.0.0.1:${api}/healthz`)).rejects.toThrow();
    files.install(cert(1));
    await bed.started().server.reloadTls();
    expect(await servedFingerprint(api)).toBe(cert(1).fingerprint256);
  });

  it('drops an API client that never finishes the TLS handshake, within apiHeadersTimeout', async () => {
    const { api } = await setupTls(cert(0), { apiTls: true, apiHeadersTimeout: 300 });
    const socket = createConnection({ host: '127.0.0.1', port: api });
    sockets.push(socket);
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.resume();
    const opened = Date.now();
    await once(socket, 'close');
    expect(Date.now() - opened).toBeLessThan(1500);
  });

  it('serves https by default when apiHost is not loopback, http on loopback; apiTls decides otherwise', () => {
    const tls = { tlsCert: '/c', tlsKey: '/k', apiKey: 'k'.repeat(16) };
    const uses = (o: object): boolean => apiUsesTls(resolveServerOptions({ ...tls, ...o }));
    expect(uses({ apiHost: '10.0.0.5' })).toBe(true);
    expect(uses({ apiHost: '127.0.0.1' })).toBe(false);
    expect(uses({ apiHost: '::1' })).toBe(false);
    expect(uses({ apiHost: '127.0.0.1', apiTls: true })).toBe(true);
    expect(uses({ apiHost: '10.0.0.5', apiTls: false })).toBe(false);
    expect(apiUsesTls(resolveServerOptions({ apiHost: '10.0.0.5', apiKey: 'k'.repeat(16) }))).toBe(false);
  });

  it('refuses half a TLS configuration, and apiTls without a certificate', () => {
    expect(() => resolveServerOptions({ tlsCert: '/c' })).toThrow(/tlsKey: set both tlsCert and tlsKey, or neither/);
    expect(() => resolveServerOptions({ tlsKey: '/k' })).toThrow(/tlsCert: set both tlsCert and tlsKey, or neither/);
    expect(() => resolveServerOptions({ apiTls: true })).toThrow(/apiTls: apiTls needs a certificate/);
  });
});

/** `uidpush serve` with its JSON log lines, as they come. */
function serve(args: string[]): {
  child: ChildProcessWithoutNullStreams;
  line: (match: (l: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve', '--port', '0', '--api-port', '0', ...args]);
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout }).on('line', (text) => {
    lines.push(JSON.parse(text) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  let seen = 0;
  // Each call consumes lines up to the one that matches, so two waits never match the same.
  const line = async (match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    for (;;) {
      while (seen < lines.length) {
        const l = lines[seen++] as Record<string, unknown>;
        if (match(l)) return l;
      }
      if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
      await Promise.race([new Promise<void>((r) => waiters.push(r)), once(child, 'exit')]);
    }
  };
  return { child, line };
}

describe('uidpush serve with --tls-cert and --tls-key', { timeout: 60_000 }, () => {
  it('reloads on SIGHUP; a bad file on SIGHUP logs an error and keeps the certificate', async () => {
    const files = servedFiles(cert(0));
    const { child, line } = serve(['--tls-cert', files.certPath, '--tls-key', files.keyPath]);
    const listening = await line((l) => l.msg === 'listening');
    expect(listening).toMatchObject({ tls: true, certificate: { fingerprint256: cert(0).fingerprint256 } });
    const port = Number(listening.port);
    const old = await seed(`wss://127.0.0.1:${port}`, 'old', cert(0).cert);

    files.install(cert(1));
    child.kill('SIGHUP');
    expect(await line((l) => l.msg === 'TLS certificate reloaded')).toMatchObject({ fingerprint256: cert(1).fingerprint256 });
    expect(await servedFingerprint(port)).toBe(cert(1).fingerprint256);

    files.install({ cert: cert(2).cert, key: cert(0).key });
    child.kill('SIGHUP');
    const failed = await line((l) => l.level === 50);
    expect(failed.msg).toBe('TLS reload failed; still serving the previous certificate');
    expect(JSON.stringify(failed)).toContain('is not the private key of the certificate');
    expect(await servedFingerprint(port)).toBe(cert(1).fingerprint256);

    // The connection from before both reloads is still served, and shutdown is as ever.
    old.send('old:still here');
    expect(await old.next()).toBe('still here');
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
  });

  it('under --workers the primary forwards SIGHUP and every worker reloads', async () => {
    const files = servedFiles(cert(0));
    const { child, line } = serve(['--workers', '2', '--tls-cert', files.certPath, '--tls-key', files.keyPath]);
    const started = [await line((l) => l.msg === 'listening'), await line((l) => l.msg === 'listening')];
    files.install(cert(1));
    child.kill('SIGHUP');
    const reloaded = [await line((l) => l.msg === 'TLS certificate reloaded'), await line((l) => l.msg === 'TLS certificate reloaded')];
    expect(new Set(reloaded.map((l) => l.pid))).toEqual(new Set(started.map((l) => l.pid)));
    for (const l of reloaded) expect(l.fingerprint256).toBe(cert(1).fingerprint256);
    // Whichever worker takes it, a new connection gets the new certificate.
    const port = Number(started[0]?.port);
    for (let i = 0; i < 4; i++) expect(await servedFingerprint(port)).toBe(cert(1).fingerprint256);
  });

  it("stops with a configuration error naming the flag when a file is unreadable or the key is not the certificate's (exit 2)", async () => {
    const files = servedFiles(cert(0));
    const missing = await runCli(['serve', '--port', '0', '--tls-cert', join(dir, 'missing.crt'), '--tls-key', files.keyPath]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/tlsCert \(--tls-cert \/ UIDPUSH_TLS_CERT\): cannot read .*missing\.crt/);
    const mismatched = await runCli(['serve', '--port', '0', '--workers', '2', '--tls-cert', files.certPath], {
      UIDPUSH_TLS_KEY: join(dir, 'c1.key'),
    });
    expect(mismatched.code).toBe(2);
    expect(mismatched.stderr).toMatch(/tlsKey \(--tls-key \/ UIDPUSH_TLS_KEY\): .*is not the private key of the certificate/);
    const half = await runCli(['serve', '--port', '0', '--tls-cert', files.certPath]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain('tlsKey (--tls-key / UIDPUSH_TLS_KEY): set both tlsCert and tlsKey, or neither');
  });
});

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { envName, flagName, loadServeConfig } from '../../src/cli/config.js';
import { connect, type TestClient } from '../helpers/clients.js';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const children: ChildProcessWithoutNullStreams[] = [];
const clients: TestClient[] = [];

function cli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { ...process.env, ...env },
  });
  children.push(child);
  return child;
}

/** Waits for the pino line that says where the server listens. */
function listening(child: ChildProcessWithoutNullStreams): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg: string; host: string; port: number };
      if (entry.msg === 'listening') resolve(entry);
    });
    child.once('exit', (code) => {
      reject(new Error(`exited with ${String(code)}`));
    });
  });
}

function exited(child: ChildProcessWithoutNullStreams): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      resolve({ code, stderr });
    });
  });
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('uidpush serve', { timeout: 60_000 }, () => {
  // Free ports, not the defaults (1234, 1235: checked in 'serve configuration'), so that
  // the suite runs beside an `npm start`.
  it('serves the seed protocol and the API on 127.0.0.1, on the ports of --port and --api-port', async () => {
    const child = cli(['serve', '--port', '0', '--api-port', '0']);
    const where = (await listening(child)) as { host: string; port: number; api?: { host: string; port: number } };
    expect(where).toMatchObject({ host: '127.0.0.1', api: { host: '127.0.0.1' } });
    expect(where.port).toBeGreaterThan(0);
    const health = await fetch(`http://127.0.0.1:${where.api?.port ?? 0}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
    const alice = await connect(`ws://127.0.0.1:${where.port}`);
    clients.push(alice);
    await alice.login('alice');
    alice.send('alice:over the CLI');
    expect(await alice.next()).toBe('over the CLI');
  });

  it('shuts down on SIGTERM: clients get 1001 and the process exits 0', async () => {
    const child = cli(['serve', '--port', '0', '--api-port', '0']);
    const { port } = await listening(child);
    const a = await connect(`ws://127.0.0.1:${port}`);
    await a.login('a');
    const done = exited(child);
    child.kill('SIGTERM');
    expect(await a.closed()).toBe(1001);
    expect((await done).code).toBe(0);
  });

  it('shuts down on SIGINT and exits 0', async () => {
    const child = cli(['serve', '--port', '0', '--api-port', '0']);
    await listening(child);
    const done = exited(child);
    child.kill('SIGINT');
    expect((await done).code).toBe(0);
  });

  it('takes options from flags over env over the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uidpush-'));
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ port: 1, maxUidLength: 5, logLevel: 'debug' }));
    const child = cli(['serve', '--config', file, '--port', '0', '--api-port', 'off'], { UIDPUSH_MAX_UID_LENGTH: '3' });
    const { port } = await listening(child);
    const c = await connect(`ws://127.0.0.1:${port}`);
    clients.push(c);
    c.send('abcd');
    expect(await c.next()).toBe('error: bad_request uid longer than 3 bytes');
  });

  it('exits 2 with a message naming each invalid setting', async () => {
    const child = cli(['serve', '--port', 'eighty', '--idle-timeout', '10'], {
      UIDPUSH_SLOW_CONSUMER_POLICY: 'explode',
    });
    const { code, stderr } = await exited(child);
    expect(code).toBe(2);
    expect(stderr).toContain("--port: expected a number, got 'eighty'");
    const child2 = cli(['serve'], { UIDPUSH_SLOW_CONSUMER_POLICY: 'explode' });
    const second = await exited(child2);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/slowConsumerPolicy \(--slow-consumer-policy \/ UIDPUSH_SLOW_CONSUMER_POLICY\): Invalid option/);
  });

  it('exits 2 on an unknown flag, an unknown command and a bad config file', async () => {
    expect((await exited(cli(['serve', '--nope']))).stderr).toMatch(/Unknown option '--nope'/);
    const unknown = await exited(cli(['frobnicate']));
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const missing = await exited(cli(['serve', '--config', '/nonexistent/uidpush.json']));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read config file/);
  });

  it('refuses to serve without auth on a non-loopback address (protected mode)', async () => {
    const { code, stderr } = await exited(cli(['serve', '--host', '0.0.0.0', '--port', '0', '--api-port', 'off']));
    expect(code).toBe(2);
    expect(stderr).toMatch(/host .*protected mode: without token auth/);
  });

  it('exits 1 when the port is taken', async () => {
    const first = cli(['serve', '--port', '0', '--api-port', '0']);
    const { port } = await listening(first);
    const second = await exited(cli(['serve', '--port', String(port), '--api-port', '0']));
    expect(second.code).toBe(1);
  });
});

describe('serve configuration', () => {
  it('defaults to the seed address and documented limits', async () => {
    const config = await loadServeConfig({}, {});
    expect(config.server).toMatchObject({
      host: '127.0.0.1',
      port: 1234,
      apiHost: '127.0.0.1',
      apiPort: 1235,
      maxMessageSize: 1048576,
      maxPreLoginMessageSize: 16384,
      maxPendingConnections: 10000,
      maxConnectionsPerIp: 0,
      maxHandshakesPerIp: 0,
      closeGrace: 2000,
      idleTimeout: 60000,
      maxBufferedBytes: 1048576,
      slowConsumerPolicy: 'close',
    });
    expect(config.logLevel).toBe('info');
  });

  it('derives the idle timeout from --heartbeat-interval unless --idle-timeout is given', async () => {
    expect((await loadServeConfig({ 'heartbeat-interval': '1000' }, {})).server.idleTimeout).toBe(12_000);
    expect((await loadServeConfig({ 'heartbeat-interval': '1000', 'idle-timeout': '3000' }, {})).server.idleTimeout).toBe(3000);
    expect((await loadServeConfig({}, { UIDPUSH_MAX_PRE_LOGIN_MESSAGE_SIZE: '4096' })).server.maxPreLoginMessageSize).toBe(4096);
  });

  it('maps option names to flags and environment variables', () => {
    expect(flagName('maxMessageSize')).toBe('max-message-size');
    expect(envName('maxMessageSize')).toBe('UIDPUSH_MAX_MESSAGE_SIZE');
  });

  it('refuses unknown keys and bad JSON in the config file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uidpush-'));
    const file = join(dir, 'c.json');
    await writeFile(file, '{"prot": 1}');
    await expect(loadServeConfig({ config: file }, {})).rejects.toThrow(/Unrecognized key/);
    await writeFile(file, '{not json');
    await expect(loadServeConfig({ config: file }, {})).rejects.toThrow(/not valid JSON/);
  });
});

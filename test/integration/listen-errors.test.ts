import { createServer as createNetServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, ListenError } from '../../src/index.js';
import { runCli } from '../helpers/cli.js';

const blockers: Server[] = [];

/** A port held by a plain TCP server on 127.0.0.1. */
async function busyPort(): Promise<number> {
  const server = createNetServer();
  blockers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

afterEach(async () => {
  await Promise.all(blockers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** The one line a failed listen prints, with nothing else on stderr (no JSON, no stack). */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, stderr).toHaveLength(1);
  return lines[0] ?? '';
}

describe('a port that cannot be bound', { timeout: 60_000 }, () => {
  it('names the WebSocket port, its address, the reason and --port; exits 1', async () => {
    const port = await busyPort();
    const { code, stderr } = await runCli(['serve', '--port', String(port), '--api-port', 'off']);
    expect(code).toBe(1);
    expect(oneLine(stderr)).toBe(
      `uidpush serve: cannot listen on 127.0.0.1:${port} (WebSocket port): already in use (EADDRINUSE); choose another with --port (or --host)`,
    );
  });

  it('names the server API and --api-port', async () => {
    const port = await busyPort();
    const { code, stderr } = await runCli(['serve', '--port', '0', '--api-port', String(port)]);
    expect(code).toBe(1);
    expect(oneLine(stderr)).toBe(
      `uidpush serve: cannot listen on 127.0.0.1:${port} (server API): already in use (EADDRINUSE); choose another with --api-port (or --api-host), or 'off'`,
    );
  });

  it('names the inner text port and --inner-port', async () => {
    const port = await busyPort();
    const { code, stderr } = await runCli(['serve', '--port', '0', '--api-port', 'off', '--inner-port', String(port)]);
    expect(code).toBe(1);
    expect(oneLine(stderr)).toBe(
      `uidpush serve: cannot listen on 127.0.0.1:${port} (inner text port): already in use (EADDRINUSE); choose another with --inner-port, or 'off'`,
    );
  });

  it('under --workers, says it once from the primary and exits 1 instead of forking again', async () => {
    const port = await busyPort();
    const { code, stderr } = await runCli([
      'serve',
      '--workers',
      '2',
      '--port',
      String(port),
      '--api-port',
      'off',
      '--log-level',
      'silent',
    ]);
    expect(code).toBe(1);
    expect(oneLine(stderr)).toMatch(
      new RegExp(
        `^uidpush serve: cannot listen on 127\\.0\\.0\\.1:${port} \\(WebSocket port\\): already in use \\(EADDRINUSE\\); choose another with --port`,
      ),
    );
  });

  it('rejects an embedded listen() with a ListenError naming the listener', async () => {
    const port = await busyPort();
    const server = createServer({ port: 0, apiPort: port });
    const err: unknown = await server.listen().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toMatchObject({ code: 'UIDPUSH_ERR_LISTEN', listener: 'api', host: '127.0.0.1', port, reason: 'EADDRINUSE' });
    expect((err as ListenError).cause).toMatchObject({ code: 'EADDRINUSE' });
    await server.close();
  });
});

import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

describe('uidpush serve --help', { timeout: 60_000 }, () => {
  it('shows each flag with its variable, unit, meaning and default', async () => {
    const { code, stdout } = await runCli(['serve', '--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('  --workers <n>  (UIDPUSH_WORKERS)');
    expect(stdout).toContain('  --log-level <level>  (UIDPUSH_LOG_LEVEL)');
    expect(stdout).toContain('  --config <file.json>  (UIDPUSH_CONFIG)');
    expect(stdout).toMatch(
      /--close-grace <ms> {2}\(UIDPUSH_CLOSE_GRACE\)\n\s+How long a peer the server closes[^]*?Default: 2000 ms \(2 s\)\./,
    );
    expect(stdout).not.toContain('see the README');
    for (const line of stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
  });
});

describe('uidpush serve with a token key it cannot read', { timeout: 60_000 }, () => {
  it('exits 2 with one plain line', async () => {
    const { code, stderr } = await runCli(['serve', '--port', '0', '--api-port', 'off', '--jwt-public-key', '/nonexistent/key.pem']);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^uidpush serve: cannot load the token key: /);
  });
});

describe('uidpush --help and the inbox command', { timeout: 60_000 }, () => {
  it('lists inbox and the push flags of the inbox, and runs inbox as an API command', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ {2}inbox <uid> {2,}a uid's inbox/m);
    for (const flag of ['--delivery', '--idempotency-key <key>', '--await-acks <n>', '--await-timeout <ms>'])
      expect(stdout).toContain(flag);
    for (const line of stdout.split('\n')) expect(line.length, line).toBeLessThanOrEqual(100);
    // Known to main as an API command: a usage error of its own, not "unknown command".
    const usage = await runCli(['inbox']);
    expect([usage.code, usage.stderr]).toEqual([
      2,
      expect.stringMatching(/^uidpush inbox: inbox: expected 1 argument\(s\), got 0/) as unknown,
    ]);
  });
});

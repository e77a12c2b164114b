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

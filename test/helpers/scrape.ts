import { request } from 'node:http';

/**
 * An API call on a connection of its own (no keep-alive pool), so that under `--workers`
 * successive calls are spread over the workers as new connections are, instead of all
 * riding the one pooled connection to one worker.
 */
export function freshCall(url: string, method = 'GET', body?: unknown): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method, agent: false, headers: payload === undefined ? {} : { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** The JSON answer of {@link freshCall}; throws unless 200. */
export async function freshJson<T = Record<string, unknown>>(url: string, method = 'GET', body?: unknown): Promise<T> {
  const { status, text } = await freshCall(url, method, body);
  if (status !== 200) throw new Error(`${method} ${url}: ${String(status)} ${text}`);
  return JSON.parse(text) as T;
}

/**
 * The value of one series in Prometheus text: `name` with exactly `labels` (none: the
 * unlabelled series). Throws when the series is missing or appears twice, so a test reads
 * what the exposition really says.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  const found: number[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const got = (match[2] ?? '').split(',').filter(Boolean).sort().join(',');
    if (got === want) found.push(Number(match[3]));
  }
  const [value] = found;
  if (found.length !== 1 || value === undefined) throw new Error(`${name}{${want}}: ${String(found.length)} series in the exposition`);
  return value;
}

// A browser notifications page on the client SDK: a uidpush server with the inbox on and
// token auth, and a small web server for the page, the SDK's browser bundle and a token
// endpoint. Open the page in two tabs, push with curl, cut the network (devtools, or stop
// and restart this program: the inbox is in memory, so cut the network, not the server)
// and see every message arrive once when the tab is back.
//
// Run: npm run build && npx tsx examples/browser/serve.ts   (PORT, WS_PORT, API_PORT to change)
// Then open http://127.0.0.1:8080/?uid=alice in two tabs and push:
//   curl -s http://127.0.0.1:1235/v1/push -H 'content-type: application/json' -d '{"uid":"alice","data":"hi"}'
// Programs outside this repository import from 'uidpush' instead of '../../src/index.js',
// and serve node_modules/uidpush/dist/browser/uidpush-client.js.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { createServer, type UidpushServer } from '../../src/index.js';

const HERE = import.meta.dirname;
const BUNDLE = join(HERE, '../../dist/browser/uidpush-client.js');

/** What {@link startExample} takes. Ports default to 0 (any free one). */
export interface ExampleOptions {
  /** The page's port. */
  port?: number;
  /** The WebSocket port. */
  wsPort?: number;
  /** The HTTP API's port (where curl pushes). */
  apiPort?: number;
  /** The SDK's browser bundle; default: dist/browser/uidpush-client.js, made by `npm run build`. */
  bundle?: Uint8Array;
}

/** A running example: its three addresses, the uidpush server, and how to stop both. */
export interface Example {
  readonly pageUrl: string;
  readonly wsUrl: string;
  readonly apiUrl: string;
  readonly server: UidpushServer;
  close(): Promise<void>;
}

/**
 * Starts the uidpush server and the page's web server.
 *
 * The token endpoint signs a token for whatever uid the page asks: a demo stand-in for an
 * application's own backend, which would sign one only for the user its session proves.
 */
export async function startExample(options: ExampleOptions = {}): Promise<Example> {
  const secret = randomBytes(32).toString('base64url');
  const key = new TextEncoder().encode(secret);
  const server = createServer({
    host: '127.0.0.1',
    port: options.wsPort ?? 0,
    apiPort: options.apiPort ?? 0,
    jwtSecret: secret,
    inbox: true,
    shutdownGrace: 500,
  });
  const { port: wsPort } = await server.listen();
  const apiPort = server.address().api?.port ?? 0;
  const wsUrl = `ws://127.0.0.1:${String(wsPort)}`;
  const page = await readFile(join(HERE, 'index.html'));
  const bundle = options.bundle ?? (await readFile(BUNDLE));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://page');
    if (url.pathname === '/') {
      send(res, 200, 'text/html; charset=utf-8', page);
      return;
    }
    if (url.pathname === '/uidpush-client.js') {
      send(res, 200, 'text/javascript', bundle);
      return;
    }
    if (url.pathname === '/config') {
      send(res, 200, 'application/json', JSON.stringify({ wsUrl }));
      return;
    }
    if (url.pathname === '/token') {
      const uid = url.searchParams.get('uid') ?? '';
      // Short tokens on request, so refresh before expiry can be watched (and tested).
      const ttl = Math.min(Math.max(Number(url.searchParams.get('ttl') ?? 3600), 2), 86_400);
      if (uid === '') {
        send(res, 400, 'text/plain', 'uid is required');
        return;
      }
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(uid)
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + ttl)
        .sign(key);
      send(res, 200, 'text/plain', token);
      return;
    }
    send(res, 404, 'text/plain', 'not found');
  }

  const web = createHttpServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      send(res, 500, 'text/plain', String(error));
    });
  });
  await new Promise<void>((resolve, reject) => {
    web.once('error', reject).listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const pagePort = (web.address() as AddressInfo).port;
  return {
    pageUrl: `http://127.0.0.1:${String(pagePort)}/`,
    wsUrl,
    apiUrl: `http://127.0.0.1:${String(apiPort)}`,
    server,
    async close() {
      web.closeAllConnections();
      await Promise.all([new Promise((resolve) => web.close(resolve)), server.close()]);
    },
  };
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  // The page is the demo's own: no caching, so a rebuilt bundle is picked up on reload.
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const example = await startExample({
    port: Number(process.env.PORT ?? 8080),
    wsPort: Number(process.env.WS_PORT ?? 1234),
    apiPort: Number(process.env.API_PORT ?? 1235),
  });
  console.log(`page: ${example.pageUrl}?uid=alice (open it in two tabs)`);
  console.log(`push: curl -s ${example.apiUrl}/v1/push -H 'content-type: application/json' -d '{"uid":"alice","data":"hello"}'`);
  const stop = (): void => {
    void example.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop).once('SIGTERM', stop);
}

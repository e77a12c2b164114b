import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { Socket, type Server } from 'node:net';
import type { FastifyHttpOptions, FastifyHttpsOptions, FastifyInstance } from 'fastify';
import { ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/types.js';

/** How long the server API's HTTP server may wait on a client, and how many it may hold. */
export interface ApiConnectionLimits {
  /** ms to receive a request's headers; then 408 and close. */
  headersTimeout: number;
  /** ms to receive a whole request, headers and body; then 408 and close. */
  requestTimeout: number;
  /** ms an idle keep-alive connection stays open between requests. */
  keepAliveTimeout: number;
  /** Most open connections; the ones over it are closed as soon as they are accepted. */
  maxConnections: number;
}

/**
 * Bytes of a request body the server API reads and discards after answering before the
 * body arrived (413, 401, 404...), so that a client still writing reads its answer
 * instead of a reset. A body declared larger, or a chunked one that goes past it, gets its
 * answer and then the connection is closed.
 */
export const DRAIN_LIMIT = 64 * 1024 * 1024;

/**
 * Period of a sweep that enforces `timeoutMs` for many connections at once: a quarter of
 * it, between 10 ms and 1 s. A connection is then cut between the timeout and the timeout
 * plus one period.
 */
export function sweepInterval(timeoutMs: number): number {
  return Math.min(1000, Math.max(10, Math.floor(timeoutMs / 4)));
}

/**
 * Wraps `warn` so that it runs at most once per `everyMs`; it is told how many calls were
 * skipped since. For events an attacker can repeat at will (a connection over a cap), so
 * that they cost one log line a minute, not one each.
 */
export function throttled(everyMs: number, warn: (skipped: number) => void): () => void {
  let last = -Infinity;
  let skipped = 0;
  return () => {
    const now = Date.now();
    if (now - last < everyMs) {
      skipped++;
      return;
    }
    last = now;
    warn(skipped);
    skipped = 0;
  };
}

/**
 * Caps `server`'s open connections: node closes those over the cap as soon as they are
 * accepted (the client sees its connection closed before any answer), and emits `drop`.
 */
export function capConnections(server: Server, max: number, log: Logger, what: string): void {
  server.maxConnections = max;
  server.on(
    'drop',
    throttled(60_000, (skipped) => {
      log.warn({ maxConnections: max, skippedSinceLastWarning: skipped }, `${what}: connection over the cap closed`);
    }),
  );
}

/**
 * Sockets whose current request was answered before its body had arrived; their body is
 * being drained. A timeout on one of them must not write a second answer.
 */
const answeredEarly = new WeakSet<Socket>();

/** A certificate and key for the server API to serve https with. */
export interface ApiTls {
  cert: Buffer;
  key: Buffer;
  /** ms a client has to complete the TLS handshake; then its socket is destroyed. */
  handshakeTimeout: number;
}

/**
 * The fastify options that put the limits on the server API's node:http (or node:https,
 * given `tls`) server. Node enforces the header and request timeouts in one sweep over all
 * connections every `connectionsCheckingInterval`, not with a timer per connection; for
 * https they count from the end of the TLS handshake, which `handshakeTimeout` bounds.
 */
export function apiServerOptions(
  limits: ApiConnectionLimits,
  tls?: ApiTls,
): FastifyHttpOptions<HttpServer> | FastifyHttpsOptions<HttpsServer> {
  const node = {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    connectionsCheckingInterval: sweepInterval(Math.min(limits.headersTimeout, limits.requestTimeout)),
  };
  const common = {
    requestTimeout: limits.requestTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => {
      answerClientError(error, socket, limits);
    },
  };
  // fastify hands `http` to http.createServer and `https` to https.createServer, not both.
  return tls === undefined ? { ...common, http: node } : { ...common, https: { ...node, ...tls } };
}

/**
 * Answers an error node raises before a request reaches fastify (a timeout, malformed
 * HTTP, headers too large) with the API's JSON error body, then closes the connection.
 */
function answerClientError(error: Error & { code?: string }, socket: Socket, limits: ApiConnectionLimits): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, code, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [
          408,
          'Request Timeout',
          ErrorCode.RequestTimeout,
          `request not received in time (headers within ${limits.headersTimeout} ms, all of it within ${limits.requestTimeout} ms)`,
        ]
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', ErrorCode.TooLarge, 'request headers too large']
        : [400, 'Bad Request', ErrorCode.BadRequest, 'malformed HTTP request'];
  if (socket.writable && !answeredEarly.has(socket)) {
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Caps the API server's connections, and makes an answer sent before its request's body
 * arrived readable by the client: the rest of the body (up to {@link DRAIN_LIMIT}) is read
 * and discarded instead of the connection being closed under a client still writing,
 * which then sees EPIPE or a reset instead of the answer.
 */
export function guardApiServer(app: FastifyInstance, limits: ApiConnectionLimits, log: Logger): void {
  capConnections(app.server, limits.maxConnections, log, 'server API');
  app.addHook('onSend', (request, reply, payload, done) => {
    const raw = request.raw;
    // An injected request (fastify's inject(), in tests) has no connection to keep or close.
    if (!raw.complete && raw.socket instanceof Socket) {
      const declared = Number(raw.headers['content-length']);
      if (declared > DRAIN_LIMIT) {
        reply.header('connection', 'close');
      } else {
        // fastify asks to close after a body error; reading the body to its end makes that
        // unnecessary, and the connection may serve the client's next request.
        reply.removeHeader('connection');
        drain(raw, app.server);
      }
    }
    done(null, payload);
  });
}

/**
 * Reads and discards the rest of `request`'s body; past {@link DRAIN_LIMIT}, closes. If
 * `server` began closing meanwhile, closes once the body is read: the connection was busy
 * when the server closed its idle ones, and would otherwise hold the close up until its
 * keep-alive timeout.
 */
function drain(request: IncomingMessage, server: HttpServer): void {
  const socket = request.socket;
  answeredEarly.add(socket);
  let left = DRAIN_LIMIT;
  const onData = (chunk: Buffer): void => {
    left -= chunk.length;
    if (left < 0) socket.destroy();
  };
  const done = (): void => {
    answeredEarly.delete(socket);
    request.off('data', onData);
    if (!server.listening) socket.destroy();
  };
  request.on('data', onData);
  request.once('end', done);
  request.once('close', done);
  request.resume();
}

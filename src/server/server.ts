import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createApi } from '../api/http.js';
import { sweepInterval } from '../api/connection-limits.js';
import { InnerTextServer } from '../api/inner-text.js';
import { TokenCutoffs } from '../auth/cutoffs.js';
import { TokenVerifier } from '../auth/jwt.js';
import { ProgramErrorCode, UidpushError, type ErrorCode } from '../core/errors.js';
import type {
  BroadcastResult,
  GroupInfo,
  MaybePromise,
  PushOptions,
  PushResult,
  PushService,
  ServiceStats,
  TokenRevocation,
  UidPage,
} from '../core/service.js';
import { silentLogger, type Data, type Group, type Logger, type Uid } from '../core/types.js';
import { parseDelivery, type DeliveryClass, type InboxInfo } from '../core/inbox.js';
import { isLoopback } from '../api/api-key.js';
import { originPolicy } from '../core/origins.js';
import { Hub, type HubStats } from '../delivery/hub.js';
import { Metrics } from '../metrics/metrics.js';
import type { Broker } from '../broker/broker.js';
import { createRedisBroker } from '../broker/redis/broker.js';
import type { ProcessGroup } from '../broker/ipc.js';
import { LocalBroker } from '../broker/local.js';
import { Node } from '../node/node.js';
import { groupStats, workerReports, type WorkerReportBody } from './group-stats.js';
import { fileLimitWarning, openFileLimit } from './file-limit.js';
import { apiUsesTls, loadTls, loadTlsSync, tlsPaths, type TlsMaterial, type TlsPaths } from './tls.js';
import { Registry } from '../registry/registry.js';
import type { Connection } from '../transport/connection.js';
import type { ConnectionInfo } from '../transport/connection-info.js';
import { WsTransport } from '../transport/ws/server.js';
import { authEnabled, defaultClientRights, resolveServerOptions, type ResolvedServerOptions, type ServerOptionsInput } from './options.js';

/** Options of {@link createServer}: the validated settings plus a logger and a broker. */
export interface ServerOptions extends ServerOptionsInput {
  /** Where the server logs (a pino logger fits). Silent by default. */
  logger?: Logger | undefined;
  /**
   * Joins this server to a cluster through the broker (e.g. a `MemoryCluster` broker, or
   * the Redis broker that `redis` builds). Without one, the server is a cluster of one
   * (its own broker, with no peers).
   */
  broker?: Broker | undefined;
  /**
   * The workers this server is one of (`uidpush serve --workers`, from
   * `createWorkerGroup()` in a node:cluster worker): `GET /v1/stats` and /metrics then
   * answer for every worker together, whichever takes the request.
   */
  group?: ProcessGroup | undefined;
}

/** A client's push, publish or broadcast, as reported by the `message` event. */
export interface MessageEvent {
  /** The connection that sent it. */
  connection: ConnectionInfo;
  /** The sender's uid. */
  from: Uid;
  /** To one uid, to a group, or to every connection. */
  scope: 'uid' | 'group' | 'broadcast';
  /** The target uid or group, or null for a broadcast. */
  to: string | null;
  /**
   * The data: from a seed-protocol client, a Buffer of the message text (a view into the
   * received frame); from a uidpush.v1 client, the frame's JSON `data` value.
   */
  data: Data;
  /** How many connections it was written to. */
  delivered: number;
}

/** A closed connection, as reported by the `close` event. */
export interface CloseEvent {
  connection: ConnectionInfo;
  /** The uid it was logged in as, if it logged in. */
  uid: Uid | undefined;
  /** The WebSocket close code (1006 when the socket went away without a close frame). */
  code: number;
  reason: string;
}

/** The events of a {@link UidpushServer}, with their arguments. */
export interface ServerEvents {
  /** A WebSocket connection was accepted (not yet logged in). */
  connection: [connection: ConnectionInfo];
  /** A connection logged in as `uid`. */
  login: [connection: ConnectionInfo, uid: Uid];
  /** A logged-in client pushed to a uid or broadcast. */
  message: [event: MessageEvent];
  /** A client message was refused with an error reply. */
  refused: [connection: ConnectionInfo, code: ErrorCode];
  /** A connection closed. */
  close: [event: CloseEvent];
  /**
   * The last connection of `uid` on this process closed, and the cluster's presence store
   * records it: from now on a presence read on any node counts none of this process's
   * connections of `uid` (other processes may still hold some). Not emitted when `uid`
   * logged in here again before the write completed.
   */
  offline: [uid: Uid];
  /** A connection was closed or skipped by the slow-consumer policy. */
  slowConsumer: [connection: ConnectionInfo, uid: Uid | undefined];
}

/** Where the server listens, once it does. */
export interface ListenAddress {
  /** The WebSocket listener. */
  host: string;
  port: number;
  /** Whether it speaks wss:// (`tlsCert` and `tlsKey` set). */
  tls: boolean;
  /** The HTTP server API, unless turned off; `tls`: it serves https. */
  api?: { host: string; port: number; tls: boolean };
  /** The inner text port, when turned on (always 127.0.0.1). */
  inner?: { host: string; port: number };
}

/** The certificate a TLS server serves, as {@link UidpushServer.reloadTls} reports it. */
export interface TlsCertificateInfo {
  /** SHA-256 fingerprint, `AB:CD:...`. */
  fingerprint256: string;
  /** Expiry, as the certificate states it (`Dec  3 01:23:47 2026 GMT`). */
  validTo: string;
}

/**
 * What this process alone holds: in a cluster (or under `--workers`), this node's share.
 * Read-only: pushes, membership and kicks go through the server, which reaches the whole
 * cluster.
 */
export interface LocalView {
  /** Uids with a logged-in connection to this process. */
  readonly onlineUids: number;
  /** Logged-in connections of this process. */
  readonly connections: number;
  /** Logged-in connections of `uid` to this process. */
  connectionsOf(uid: Uid): number;
  /** Whether `uid` has a logged-in connection to this process. */
  isOnline(uid: Uid): boolean;
  /** Delivery counters of this process. */
  readonly delivery: Readonly<HubStats>;
}

/** Whether a uid is online, for the whole cluster. */
export interface Presence {
  online: boolean;
  /** Its connections over every node. */
  connections: number;
}

/**
 * A uidpush server: the seed text protocol and uidpush.v1 on a WebSocket port, the server
 * API, and methods to push from the embedding program. Every method reaches the whole
 * cluster when the server is in one. Made by {@link createServer}.
 */
export class UidpushServer extends EventEmitter<ServerEvents> implements PushService {
  /** What this process alone holds (see {@link LocalView}). */
  readonly local: LocalView;
  readonly #hub: Hub<Connection>;
  /** The validated options in force. */
  readonly options: Readonly<ResolvedServerOptions>;
  /** Prometheus metrics of this server (also served on the API's /metrics). */
  readonly metrics: Metrics;
  readonly #http: HttpServer;
  /** The TLS servers (the WebSocket port's, the API's when it serves https) and their paths. */
  readonly #tls: { paths: TlsPaths; servers: Pick<HttpsServer, 'setSecureContext'>[]; current: TlsCertificateInfo } | undefined;
  readonly #transport: WsTransport;
  readonly #api: FastifyInstance | undefined;
  readonly #inner: InnerTextServer | undefined;
  readonly #log: Logger;
  readonly #createdAt = Date.now();
  #state: 'new' | 'listening' | 'closing' | 'closed' = 'new';
  #innerPort: number | undefined;
  readonly #node: Node<Connection>;
  readonly #group: ProcessGroup | undefined;
  #closing: Promise<void> | undefined;
  /** Token cut-offs of kicks with `revokeTokens`, read by the verifier on every login. */
  readonly #cutoffs = new TokenCutoffs();

  /** @internal use {@link createServer}. */
  constructor(options: ServerOptions = {}) {
    super();
    const { logger, broker, group, ...rest } = options;
    this.options = resolveServerOptions(rest);
    this.#log = logger ?? silentLogger;
    this.#group = group;
    const registry = new Registry<Connection>();
    if (group !== undefined) {
      registry.listen({
        count: (uid, connections) => {
          group.setLocal(uid, connections);
        },
      });
    }
    const hub = new Hub<Connection>(registry, {
      maxBufferedBytes: this.options.maxBufferedBytes,
      slowConsumerPolicy: this.options.slowConsumerPolicy,
      onSlowConsumer: (conn, uid) => {
        this.#log.warn({ conn: conn.id, uid }, 'slow consumer');
        this.emit('slowConsumer', conn, uid);
      },
    });
    this.#hub = hub;
    this.local = {
      get onlineUids() {
        return hub.onlineCount;
      },
      get connections() {
        return hub.connectionCount;
      },
      connectionsOf: (uid) => hub.connectionsOf(uid),
      isOnline: (uid) => hub.isOnline(uid),
      get delivery() {
        return hub.stats;
      },
    };
    const clusterBroker =
      broker ??
      (this.options.redis === undefined
        ? undefined
        : createRedisBroker(this.options.redis, this.#log, {
            presenceTtl: this.options.presenceTtl,
            namespace: this.options.redisNamespace,
            timeout: this.options.brokerTimeout,
          }));
    this.#node = new Node(registry, hub, clusterBroker ?? new LocalBroker(), {
      log: this.#log,
      cutoffs: this.#cutoffs,
      limits: { maxGroupsPerUid: this.options.maxGroupsPerUid, maxMembersPerGroup: this.options.maxMembersPerGroup },
      bounds: { timeout: this.options.brokerTimeout, maxPendingBytes: this.options.brokerMaxPendingBytes },
      onOffline: (uid) => this.emit('offline', uid),
      inbox: this.options.inbox
        ? {
            retention: {
              size: this.options.inboxSize,
              ttlMs: this.options.inboxTtl,
              metaTtlMs: this.options.inboxMetaTtl,
              idempotencyMs: this.options.inboxIdempotencyTtl,
              maxDevices: this.options.inboxMaxDevices,
              memoryBytes: this.options.inboxMemory,
            },
            defaultDelivery: deliveryOf(this.options.defaultDelivery ?? 'durable'),
            maxBufferedBytes: this.options.maxBufferedBytes,
          }
        : undefined,
    });
    this.#transport = new WsTransport(
      hub,
      this.#node,
      {
        ...this.options,
        clientRights: defaultClientRights(this.options),
        checkOrigin: originPolicy(this.options.allowedOrigins, authEnabled(this.options)),
      },
      {
        connection: (conn) => {
          this.emit('connection', conn);
        },
        login: (conn, uid) => {
          this.#log.debug({ conn: conn.id, uid }, 'login');
          this.emit('login', conn, uid);
        },
        message: (conn, from, scope, to, data, delivered) => {
          if (this.listenerCount('message') === 0) return;
          this.emit('message', { connection: conn, from, scope, to: to ?? null, data, delivered });
        },
        refused: (conn, code) => {
          this.emit('refused', conn, code);
        },
        close: (conn, uid, code, reason) => {
          this.emit('close', { connection: conn, uid, code, reason });
        },
        internalError: () => {
          this.metrics.internalError('ws');
        },
      },
      this.#log,
    );
    // An upgrade request that never completes is a connection that has not logged in: it
    // gets the login timeout too (node's own 60 s, checked every 30 s, let a slow-header
    // client hold a socket for up to 90 s). Node enforces it in one sweep, not per socket.
    const handshakeTimeout = this.options.loginTimeout;
    const httpOptions = {
      headersTimeout: handshakeTimeout,
      requestTimeout: handshakeTimeout,
      connectionsCheckingInterval: sweepInterval(handshakeTimeout),
    };
    const paths = tlsPaths(this.options);
    const material = paths === undefined ? undefined : loadTlsSync(paths);
    if (paths === undefined || material === undefined) {
      this.#http = createHttpServer(httpOptions, answerPlainHttp);
      this.#tls = undefined;
    } else {
      // The TLS handshake comes before the request's timeouts start: a client that opens
      // TCP and never finishes it would hold its socket for node's default 120 s. It gets
      // the login timeout as well, so a socket that never upgrades is gone within twice it.
      const https = createHttpsServer({ ...httpOptions, cert: material.cert, key: material.key, handshakeTimeout }, answerPlainHttp);
      https.on('tlsClientError', (err: Error & { code?: string }, socket: Socket) => {
        this.#log.debug({ code: err.code, ip: socket.remoteAddress }, 'TLS handshake failed');
      });
      this.#http = https;
      this.#tls = { paths, servers: [https], current: certificateInfo(material) };
    }
    this.#transport.attach(this.#http, this.#tls !== undefined);
    this.metrics = new Metrics(
      () => this.#localStats(),
      group === undefined
        ? undefined
        : async () => {
            const gathered = await group.gather();
            return { registries: workerReports(gathered).map((r) => r.body.metrics), onlineUids: gathered.onlineUids };
          },
    );
    group?.join(async (): Promise<WorkerReportBody> => ({
      stats: this.#localStats(),
      metrics: await this.metrics.registry.getMetricsAsJSON(),
    }));
    if (this.options.apiPort !== null) {
      this.#api = createApi({
        service: this,
        metrics: this.metrics,
        apiKey: this.options.apiKey,
        maxUids: this.options.apiMaxUids,
        maxUidLength: this.options.maxUidLength,
        maxJsonDepth: this.options.maxJsonDepth,
        bodyLimit: this.options.apiBodyLimit,
        limits: {
          headersTimeout: this.options.apiHeadersTimeout,
          requestTimeout: this.options.apiRequestTimeout,
          keepAliveTimeout: this.options.apiKeepAliveTimeout,
          maxConnections: this.options.apiMaxConnections,
        },
        // The API's own handshake bound: a backend sends its headers within this, too.
        tls:
          material !== undefined && apiUsesTls(this.options)
            ? { cert: material.cert, key: material.key, handshakeTimeout: this.options.apiHeadersTimeout }
            : undefined,
        logger: this.#log,
      });
      if (this.#api.server instanceof HttpsServer) this.#tls?.servers.push(this.#api.server);
    }
    if (this.options.innerPort !== null) {
      this.#inner = new InnerTextServer({
        service: this,
        maxLineBytes: this.options.apiBodyLimit,
        maxUidLength: this.options.maxUidLength,
        maxJsonDepth: this.options.maxJsonDepth,
        onInternalError: () => {
          this.metrics.internalError('inner');
        },
        idleTimeout: this.options.innerIdleTimeout,
        maxConnections: this.options.innerMaxConnections,
        logger: this.#log,
      });
    }
  }

  // PushService: what the server API and the inner text port call, and the program's
  // methods: each reaches the whole cluster (published to the other nodes, then delivered
  // here) and answers for it.

  /**
   * Pushes `data` to every connection of `uid` (or of each uid), wherever they are
   * connected; encoded once per protocol. With the inbox on (`inbox: true`), retained in
   * each uid's inbox unless `options.delivery` says `ephemeral` (docs/delivery.md): the
   * result then carries the offset and epoch, and `options.await` waits for devices' acks.
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for options that do not fit (a retained
   *   class with the inbox off, `await` on several uids, an oversize idempotency key).
   * @example
   * await server.push('alice', 'hello'); // every connection of alice gets "hello"
   * await server.push('alice', { badge: 3 }, { delivery: { kind: 'latest', key: 'badge' } });
   */
  push(uid: Uid | readonly Uid[], data: Data, options?: PushOptions): MaybePromise<PushResult> {
    return this.#node.pushToUids(typeof uid === 'string' ? [uid] : uid, data, null, true, options);
  }

  /** Pushes to each uid (encoded once per codec); the server API's name of {@link push}. */
  pushToUids(uids: readonly Uid[], data: Data, options?: PushOptions): MaybePromise<PushResult> {
    return this.#node.pushToUids(uids, data, null, true, options);
  }

  /**
   * A uid's inbox: its position, retained range and device cursors.
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT when the inbox is off.
   */
  inboxOf(uid: Uid): MaybePromise<InboxInfo> {
    return this.#node.inboxOf(uid);
  }

  /** Pushes to every logged-in connection of every node. */
  broadcast(data: Data): MaybePromise<BroadcastResult> {
    return this.#node.broadcast(data);
  }

  /** Pushes to every connection of every member of `group`. */
  publish(group: Group, data: Data): MaybePromise<PushResult> {
    return this.#node.publish(group, data);
  }

  /**
   * Adds `uid` to `group` (it need not be online), within `maxGroupsPerUid` and
   * `maxMembersPerGroup`. Settles once a publish to the group, through any node, reaches the
   * uid's connections. Resolves false if it already was a member.
   *
   * @throws UidpushError UIDPUSH_ERR_LIMIT_EXCEEDED (a rejection) over a cap.
   */
  join(group: Group, uid: Uid): Promise<boolean> {
    return this.#node.join(group, uid);
  }

  /** Removes `uid` from `group`; resolves false if it was not a member. */
  leave(group: Group, uid: Uid): Promise<boolean> {
    return this.#node.leave(group, uid);
  }

  /** Removes `uid` from every group it belongs to; resolves how many it left. */
  leaveAll(uid: Uid): Promise<number> {
    return this.#node.leaveAll(uid);
  }

  /** Members, online members and connections of `group`. */
  groupInfo(group: Group): Promise<GroupInfo> {
    return this.#node.groupInfo(group);
  }

  /** Whether `uid` is online, and its connections, over every node. */
  presence(uid: Uid): MaybePromise<Presence> {
    const connections = this.#node.connectionsOf(uid);
    return typeof connections === 'number'
      ? { online: connections > 0, connections }
      : connections.then((n) => ({ online: n > 0, connections: n }));
  }

  /** Number of logged-in connections of `uid`, over every node. */
  connectionsOf(uid: Uid): MaybePromise<number> {
    return this.#node.connectionsOf(uid);
  }

  /**
   * A page of online uids, over every node, in code-point order.
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT for a cursor the server did not make.
   */
  listUids(cursor: string | null, limit: number): Promise<UidPage> {
    return this.#node.listUids(cursor, limit);
  }

  /**
   * Closes every connection of `uid`, on every node, with 4501. With `revokeTokens`, first
   * refuses the uid's tokens issued before now (see {@link revokeTokens}), so the kicked
   * client cannot log in again with the token it holds.
   *
   * @throws UidpushError UIDPUSH_ERR_INVALID_ARGUMENT when `reason` is over 123 bytes.
   */
  kick(uid: Uid, reason = 'kicked', options: { revokeTokens?: boolean | undefined } = {}): MaybePromise<number> {
    if (options.revokeTokens !== true) return this.#node.kick(uid, reason);
    const revoked = this.revokeTokens(uid);
    return revoked instanceof Promise ? revoked.then(() => this.#node.kick(uid, reason)) : this.#node.kick(uid, reason);
  }

  /**
   * Refuses the tokens of `uid` whose `iat` is earlier than the current second (or that
   * have no `iat`), on every node, for `revokeTtl` ms; tokens issued from now on are
   * accepted. Open connections are not closed: {@link kick} does that.
   *
   * @returns the cut-off: `before` and `until`, in ms since the epoch.
   */
  revokeTokens(uid: Uid): MaybePromise<TokenRevocation> {
    const now = Date.now();
    // iat counts whole seconds: a token minted in the same second as the kick, after it,
    // must stay valid (a backend that kicks, then issues a new token at once).
    const revocation = { before: Math.floor(now / 1000) * 1000, until: now + this.options.revokeTtl };
    const recorded = this.#node.revokeTokens(uid, revocation);
    return recorded instanceof Promise ? recorded.then(() => revocation) : revocation;
  }

  /**
   * Whether the server accepts clients: listening, not shutting down, and its broker
   * reachable and answering within `brokerTimeout`.
   */
  ready(): boolean {
    return this.#state === 'listening' && this.#node.isReady();
  }

  /** This node's id in its cluster, if it is in one. */
  get nodeId(): string | undefined {
    return this.#node.clustered ? this.#node.nodeId : undefined;
  }

  /**
   * Counters and gauges, as `GET /v1/stats` reports them: `onlineUids` and `connections`
   * for the whole cluster, the rest for this server (under `--workers`, its whole group).
   */
  stats(): MaybePromise<ServiceStats> {
    const group = this.#group;
    const totals = this.#node.clustered ? this.#node.totals() : undefined;
    if (group !== undefined) {
      return Promise.all([group.gather(), totals]).then(([gathered, whole]) => groupStats(gathered, whole));
    }
    const local = this.#localStats();
    if (totals === undefined) return local;
    return Promise.resolve(totals).then((t) => ({ ...local, onlineUids: t.onlineUids, connections: t.connections }));
  }

  /** This process's own counters; `onlineUids` and `connections` are its local ones too. */
  #localStats(): ServiceStats {
    const hub = this.#hub.stats;
    const transport = this.#transport.stats;
    const onlineUids = this.#hub.onlineCount;
    const connections = this.#hub.connectionCount;
    return {
      onlineUids,
      connections,
      localOnlineUids: onlineUids,
      localConnections: connections,
      openConnections: this.#transport.openConnections,
      messagesIn: transport.messagesIn,
      bytesIn: transport.bytesIn,
      messagesOut: hub.framesWritten,
      bytesOut: hub.bytesWritten,
      dropped: {
        // In a cluster a uid absent here may be online elsewhere: the cluster node counts.
        offline: this.#node.offlineDrops,
        slow_consumer: hub.framesDropped,
        bad_request: transport.refused.bad_request,
        too_large: transport.refused.too_large,
        rate_limited: transport.refused.rate_limited,
      },
      heartbeatCloses: transport.heartbeatCloses,
      closeGraceTerminations: transport.closeGraceTerminations,
      upgradesRefused: transport.upgradesRefused,
      uptimeSeconds: Math.floor((Date.now() - this.#createdAt) / 1000),
      ...(this.#node.clustered ? { broker: this.#node.stats } : {}),
    };
  }

  /** Number of open WebSocket connections, logged in or not. */
  get openConnections(): number {
    return this.#transport.openConnections;
  }

  /**
   * Starts listening: the WebSocket port, the server API (unless `apiPort` is null) and the
   * inner text port (when `innerPort` is set). If one cannot listen, the others are closed
   * and the error is thrown.
   *
   * @returns the addresses in use (with the real ports where an option was 0).
   * @throws ListenError (UIDPUSH_ERR_LISTEN) naming the listener that could not bind, its
   *   address and the system's reason (`EADDRINUSE`...).
   * @throws UidpushError UIDPUSH_ERR_BAD_STATE if called twice or after close.
   */
  async listen(): Promise<ListenAddress> {
    if (this.#state !== 'new') {
      throw new UidpushError(ProgramErrorCode.BadState, `cannot listen: server is ${this.#state}`);
    }
    this.#state = 'listening';
    try {
      try {
        this.#transport.setVerifier(await TokenVerifier.create(this.options, this.options.maxUidLength, this.#cutoffs));
      } catch (err) {
        throw new UidpushError(ProgramErrorCode.InvalidConfig, `cannot load the token key: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await this.#node.start();
      const { host, port, apiHost, apiPort, innerPort } = this.options;
      await bind(
        'websocket',
        host,
        port,
        () =>
          new Promise<void>((resolve, reject) => {
            this.#http.once('error', reject);
            this.#http.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
              this.#http.off('error', reject);
              resolve();
            });
          }),
      );
      const api = this.#api;
      if (api !== undefined) await bind('api', apiHost, apiPort ?? 0, () => api.listen({ host: apiHost, port: apiPort ?? 0 }));
      const inner = this.#inner;
      if (inner !== undefined) this.#innerPort = await bind('inner', '127.0.0.1', innerPort ?? 0, () => inner.listen(innerPort ?? 0));
    } catch (err) {
      await this.close();
      throw err;
    }
    const address = this.address();
    this.#log.info({ ...address, ...(this.#tls === undefined ? {} : { certificate: this.#tls.current }) }, 'listening');
    if (!authEnabled(this.options)) {
      const exposed = !isLoopback(this.options.host);
      this.#log.warn(
        { host: this.options.host, insecure: exposed },
        exposed
          ? 'INSECURE: token auth is off on a non-loopback address: anyone who reaches it may log in as any uid'
          : 'token auth is off: any local client may log in as any uid (protected mode keeps this to loopback)',
      );
    }
    const fileLimit = openFileLimit();
    const capsWarning = fileLimitWarning(fileLimit, {
      ...(this.#api === undefined ? {} : { api: this.options.apiMaxConnections }),
      ...(this.#inner === undefined ? {} : { inner: this.options.innerMaxConnections }),
    });
    if (capsWarning !== undefined) this.#log.warn({ fileLimit }, capsWarning);
    if (this.#api !== undefined && this.options.apiKey === undefined) {
      this.#log.warn({ api: address.api }, 'server API has no key: anyone on this machine may push');
    }
    return address;
  }

  /** The addresses the server listens on. */
  address(): ListenAddress {
    const info = this.#http.address() as AddressInfo | null;
    if (info === null) throw new UidpushError(ProgramErrorCode.BadState, 'server is not listening');
    const address: ListenAddress = { host: info.address, port: info.port, tls: this.#tls !== undefined };
    const api = this.#api?.server.address() as AddressInfo | null | undefined;
    if (api) address.api = { host: api.address, port: api.port, tls: this.#api?.server instanceof HttpsServer };
    if (this.#innerPort !== undefined) address.inner = { host: '127.0.0.1', port: this.#innerPort };
    return address;
  }

  /**
   * Reads `tlsCert` and `tlsKey` again, from the same paths, and serves them to every new
   * connection: the WebSocket port's, and the server API's when it serves https. Open
   * connections keep the session they have; nothing is dropped. If a file is unreadable,
   * not PEM, or the key is not the certificate's, the certificate in use stays in use.
   * `uidpush serve` calls it on SIGHUP.
   *
   * @example
   * // after certbot renewed the files in place
   * const { fingerprint256, validTo } = await server.reloadTls();
   *
   * @returns the certificate now served.
   * @throws UidpushError UIDPUSH_ERR_BAD_STATE when TLS is off (no `tlsCert`);
   *   UIDPUSH_ERR_INVALID_CONFIG naming the option whose file is at fault.
   */
  async reloadTls(): Promise<TlsCertificateInfo> {
    const tls = this.#tls;
    if (tls === undefined) throw new UidpushError(ProgramErrorCode.BadState, 'cannot reload TLS: tlsCert and tlsKey are not set');
    const material = await loadTls(tls.paths);
    // Checked above, so this does not throw: node would keep the old context if it did,
    // but only after overwriting the fields it builds the next one from.
    for (const server of tls.servers) server.setSecureContext({ cert: material.cert, key: material.key });
    tls.current = certificateInfo(material);
    this.#log.info({ ...tls.current }, 'TLS certificate reloaded');
    return tls.current;
  }

  /**
   * Graceful shutdown: stops accepting, closes every client with 1001 (going away), waits
   * up to `shutdownGrace` for them, then terminates the rest. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasListening = this.#state === 'listening';
    this.#state = 'closing';
    const httpClosed = new Promise<void>((resolve) => {
      if (!wasListening) {
        resolve();
        return;
      }
      this.#http.close(() => {
        resolve();
      });
    });
    // Stop taking pushes first, then say goodbye to the clients.
    await Promise.all([this.#api?.close(), this.#inner?.close()]);
    await this.#transport.close(this.options.shutdownGrace);
    this.#http.closeAllConnections();
    await httpClosed;
    await this.#node.close();
    this.#group?.close();
    this.#state = 'closed';
    this.#log.info({}, 'closed');
  }
}

/** One of the server's listeners: the WebSocket port, the HTTP server API, the inner text port. */
export type Listener = 'websocket' | 'api' | 'inner';

const LISTENER_NAMES: Record<Listener, string> = {
  websocket: 'WebSocket port',
  api: 'server API',
  inner: 'inner text port',
};

/** Why the system refused an address, in words, by its error code. */
const BIND_REASONS: Record<string, string> = {
  EADDRINUSE: 'already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'not an address of this machine',
  ENOTFOUND: 'host name does not resolve',
  EAI_AGAIN: 'host name does not resolve',
};

/**
 * A listener could not bind: which one, its address, and the system's error code (`reason`,
 * e.g. `EADDRINUSE`); the system's error is the `cause`.
 */
export class ListenError extends UidpushError {
  readonly listener: Listener;
  readonly host: string;
  readonly port: number;
  /** The system's error code (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`...), if it gave one. */
  readonly reason: string | undefined;

  constructor(listener: Listener, host: string, port: number, cause: unknown) {
    const reason = (cause as { code?: unknown } | undefined)?.code;
    const code = typeof reason === 'string' ? reason : undefined;
    const why = code === undefined ? undefined : BIND_REASONS[code];
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    super(
      ProgramErrorCode.Listen,
      `cannot listen on ${address} (${LISTENER_NAMES[listener]}): ${why ?? (cause as Error).message}${why === undefined || code === undefined ? '' : ` (${code})`}`,
      { cause },
    );
    this.name = 'ListenError';
    this.listener = listener;
    this.host = host;
    this.port = port;
    this.reason = code;
  }
}

/** Runs one listener's listen, turning its failure into a {@link ListenError}. */
async function bind<T>(listener: Listener, host: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    throw new ListenError(listener, host, port, err);
  }
}

/** What the WebSocket port answers a request that is not an upgrade. */
function answerPlainHttp(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket' });
  res.end('uidpush: this port speaks WebSocket; connect with a WebSocket client\n');
}

function certificateInfo(material: TlsMaterial): TlsCertificateInfo {
  return { fingerprint256: material.fingerprint256, validTo: material.validTo };
}

/**
 * Creates a uidpush server. Options are validated at once; call `listen()` to start.
 *
 * @example
 * import { createServer } from 'uidpush';
 *
 * const server = createServer({ port: 1234 });
 * server.on('login', (conn, uid) => console.log(`${uid} is online`));
 * await server.listen();
 * await server.push('alice', 'hello from the server');
 *
 * @throws UidpushError UIDPUSH_ERR_INVALID_CONFIG when an option is invalid.
 */
export function createServer(options: ServerOptions = {}): UidpushServer {
  return new UidpushServer(options);
}

/**
 * The WebSocket port's accept queue. Node's default, 511, overflowed 45,000 times when
 * 10,000 devices reconnected at once (bench/README.md, "Inbox"): each dropped SYN waits 1,
 * 3, 7 s to retry. The kernel caps it at `net.core.somaxconn` (4096 on Linux 5.4+).
 */
const LISTEN_BACKLOG = 4096;

/** The delivery class of a validated option. */
function deliveryOf(text: string): DeliveryClass {
  const parsed = parseDelivery(text);
  if (typeof parsed === 'string') throw new UidpushError(ProgramErrorCode.InvalidConfig, `defaultDelivery: ${parsed}`);
  return parsed;
}

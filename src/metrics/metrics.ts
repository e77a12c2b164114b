import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client';
import type { DropReason, ServiceStats } from '../core/service.js';

const DROP_REASONS: readonly DropReason[] = ['offline', 'slow_consumer', 'bad_request', 'too_large', 'rate_limited'];

/**
 * Where the last-resort guard caught a throw: a WebSocket connection's message, opening or
 * close; a server API request; an inner-port line.
 */
export type InternalErrorSite = 'ws' | 'api' | 'inner';
const INTERNAL_ERROR_SITES: readonly InternalErrorSite[] = ['ws', 'api', 'inner'];

const ONLINE_UIDS = 'uidpush_online_uids';
const ONLINE_UIDS_HELP = 'Uids with at least one connection on this server (under --workers: on any of its workers, each counted once).';

/**
 * The processes that serve as one (the workers of `--workers`): their registries, each as
 * `registry.getMetricsAsJSON()` gave it, and their distinct online uids.
 */
export interface MetricsGroup {
  registries: unknown[][];
  onlineUids: number;
}

/**
 * Prometheus metrics of one server, in their own registry (never prom-client's global one,
 * so two servers in one process do not collide). Counts are read from the server's stats
 * when scraped, so the delivery path pays nothing for them; only the API latency and the
 * (rare, off the hot path) internal errors are counted as they happen.
 *
 * Under `--workers` the exposition is the whole group's: every worker's registry, merged
 * with prom-client's `AggregatorRegistry.aggregate` (counters and histograms summed, each
 * gauge by its `aggregator`), and the online uids from the group's presence, since a uid
 * on two workers is one uid. Nothing here reads a cluster's store: on a Redis node the
 * figures are that node's.
 */
export class Metrics {
  /** This process's registry. {@link exposition} is what to serve. */
  readonly registry = new Registry();
  readonly #apiLatency: Histogram<'method' | 'route' | 'status'>;
  readonly #internalErrors: Counter<'where'>;
  readonly #group: (() => Promise<MetricsGroup>) | undefined;

  /**
   * @param stats - this process's stats, read at each scrape.
   * @param group - under `--workers`: gathers every worker's registry at each scrape.
   */
  constructor(stats: () => ServiceStats, group?: () => Promise<MetricsGroup>) {
    this.#group = group;
    const registers = [this.registry];
    // One snapshot per scrape, shared by every metric's collect().
    let snapshot: ServiceStats | undefined;
    let snapshotAt = -1;
    const read = (): ServiceStats => {
      const now = Date.now();
      if (snapshot === undefined || now !== snapshotAt) {
        snapshot = stats();
        snapshotAt = now;
      }
      return snapshot;
    };
    const gauge = (name: string, help: string, value: (s: ServiceStats) => number, aggregator: Aggregator = 'sum'): void => {
      new Gauge({
        name,
        help,
        registers,
        aggregator,
        collect() {
          this.set(value(read()));
        },
      });
    };
    const counter = (name: string, help: string, value: (s: ServiceStats) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          // The server's counter is the source of truth; mirror it.
          this.reset();
          this.inc(value(read()));
        },
      });
    };
    gauge('uidpush_connections', 'Logged-in WebSocket connections on this server.', (s) => s.localConnections);
    gauge('uidpush_open_connections', 'Open WebSocket connections on this server, logged in or not.', (s) => s.openConnections);
    // A sum over workers would count a uid on two workers twice: the group's comes instead.
    gauge(ONLINE_UIDS, ONLINE_UIDS_HELP, (s) => s.localOnlineUids, 'omit');
    counter('uidpush_messages_in_total', 'Messages received from clients.', (s) => s.messagesIn);
    counter('uidpush_bytes_in_total', 'Bytes received from clients in messages.', (s) => s.bytesIn);
    counter('uidpush_messages_out_total', 'Frames written to clients.', (s) => s.messagesOut);
    counter('uidpush_bytes_out_total', 'Bytes written to clients.', (s) => s.bytesOut);
    counter(
      'uidpush_heartbeat_closes_total',
      'Connections closed by the heartbeat (dead peers) or the login timeout.',
      (s) => s.heartbeatCloses,
    );
    counter(
      'uidpush_close_grace_terminations_total',
      'Closing connections destroyed because the peer did not answer the close frame within closeGrace.',
      (s) => s.closeGraceTerminations,
    );
    new Counter({
      name: 'uidpush_upgrades_refused_total',
      help: 'WebSocket handshakes refused before the upgrade, by reason: pending (503), per_ip and handshake_rate (429).',
      labelNames: ['reason'],
      registers,
      collect() {
        const refused = read().upgradesRefused;
        this.reset();
        for (const [reason, n] of Object.entries(refused)) this.inc({ reason }, n);
      },
    });
    // Zero outside a cluster: the series exist everywhere, so dashboards need no special case.
    gauge(
      'uidpush_broker_pending_bytes',
      'Bytes of publishes handed to the broker and not yet answered.',
      (s) => s.broker?.pendingBytes ?? 0,
    );
    gauge(
      'uidpush_broker_pending_publishes',
      'Publishes handed to the broker and not yet answered.',
      (s) => s.broker?.pendingPublishes ?? 0,
    );
    gauge(
      'uidpush_broker_oldest_pending_seconds',
      'How long the oldest publish waiting for the broker has waited.',
      (s) => (s.broker?.oldestPendingMs ?? 0) / 1000,
      'max',
    );
    counter(
      'uidpush_broker_refused_pushes_total',
      'Pushes not published: the broker was down, or over brokerMaxPendingBytes or brokerTimeout.',
      (s) => s.broker?.refusedPushes ?? 0,
    );
    counter(
      'uidpush_broker_stale_pushes_total',
      "Pushes from other nodes dropped on arrival, older than the sender's brokerTimeout.",
      (s) => s.broker?.stalePushes ?? 0,
    );
    counter(
      'uidpush_broker_degraded_pushes_total',
      "Pushes answered with this node's deliveries only (degraded: true).",
      (s) => s.broker?.degradedPushes ?? 0,
    );
    new Counter({
      name: 'uidpush_dropped_total',
      help: 'Messages not delivered, by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        const dropped = read().dropped;
        this.reset();
        for (const reason of DROP_REASONS) this.inc({ reason }, dropped[reason]);
      },
    });
    this.#apiLatency = new Histogram({
      name: 'uidpush_api_request_duration_seconds',
      help: 'Server API request latency.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.#internalErrors = new Counter({
      name: 'uidpush_internal_errors_total',
      help: 'Throws caught by the last-resort guard (a bug), by where: ws, api, inner.',
      labelNames: ['where'],
      registers,
    });
    // Every site from the start, at 0, so an alert on the rate sees the series exist.
    for (const where of INTERNAL_ERROR_SITES) this.#internalErrors.inc({ where }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: 'uidpush_' });
  }

  /** The content type of {@link exposition}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The Prometheus text to serve on /metrics: this process's, or under `--workers` the
   * whole group's.
   * @throws UnavailableError under `--workers` when a worker or the primary does not answer.
   */
  async exposition(): Promise<string> {
    if (this.#group === undefined) return this.registry.metrics();
    const group = await this.#group();
    const merged = AggregatorRegistry.aggregate(group.registries);
    const online = new Registry();
    new Gauge({ name: ONLINE_UIDS, help: ONLINE_UIDS_HELP, registers: [online] }).set(group.onlineUids);
    return `${await merged.metrics()}\n${await online.metrics()}`;
  }

  /** Counts one throw caught by a last-resort guard. */
  internalError(where: InternalErrorSite): void {
    this.#internalErrors.inc({ where });
  }

  /** Records one server API request. */
  observeApiRequest(method: string, route: string, status: number, seconds: number): void {
    this.#apiLatency.observe({ method, route, status: String(status) }, seconds);
  }
}

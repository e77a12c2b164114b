import type { GroupReport } from '../broker/ipc.js';
import { UnavailableError } from '../core/errors.js';
import type { BrokerStats, ServiceStats, WorkerStats } from '../core/service.js';

/** What each worker of `--workers` answers when the group is gathered. */
export interface WorkerReportBody {
  /** The worker's own stats (its `onlineUids` and `connections` are its local ones). */
  stats: ServiceStats;
  /** The worker's registry, as `registry.getMetricsAsJSON()` gives it. */
  metrics: unknown[];
}

/** The reports of a gather, checked: a worker that could not report fails the whole read. */
export function workerReports(group: GroupReport): { worker: number; pid: number; body: WorkerReportBody }[] {
  if (group.workers.length === 0) throw new UnavailableError('no worker has joined the group yet');
  return group.workers.map(({ worker, pid, report }) => {
    const body = report as Partial<WorkerReportBody> | null;
    if (body?.stats === undefined || !Array.isArray(body.metrics)) {
      throw new UnavailableError(`worker ${String(worker)} could not report`);
    }
    return { worker, pid, body: body as WorkerReportBody };
  });
}

/**
 * The stats of the whole group: counters summed (each only grows, so the sum does too while
 * no worker exits), presence from the group's store (a uid on two workers counts once),
 * and each worker's own share under `workers`.
 *
 * @param cluster - the cluster-wide presence when the group is part of a larger cluster
 *   (Redis); otherwise the group is the cluster.
 */
export function groupStats(group: GroupReport, cluster?: { onlineUids: number; connections: number }): ServiceStats {
  const reports = workerReports(group);
  const all = reports.map((r) => r.body.stats);
  const sum = (value: (s: ServiceStats) => number): number => all.reduce((a, s) => a + value(s), 0);
  const brokers = all.flatMap((s) => (s.broker === undefined ? [] : [s.broker]));
  const workers: WorkerStats[] = reports.map(({ worker, pid, body: { stats } }) => ({
    worker,
    pid,
    onlineUids: stats.localOnlineUids,
    connections: stats.localConnections,
    openConnections: stats.openConnections,
    messagesIn: stats.messagesIn,
    messagesOut: stats.messagesOut,
    uptimeSeconds: stats.uptimeSeconds,
  }));
  const [first] = all;
  return {
    onlineUids: cluster?.onlineUids ?? group.onlineUids,
    connections: cluster?.connections ?? group.connections,
    localOnlineUids: group.onlineUids,
    localConnections: group.connections,
    openConnections: sum((s) => s.openConnections),
    messagesIn: sum((s) => s.messagesIn),
    bytesIn: sum((s) => s.bytesIn),
    messagesOut: sum((s) => s.messagesOut),
    bytesOut: sum((s) => s.bytesOut),
    dropped: sumRecords(
      all.map((s) => s.dropped),
      first?.dropped,
    ),
    heartbeatCloses: sum((s) => s.heartbeatCloses),
    closeGraceTerminations: sum((s) => s.closeGraceTerminations),
    upgradesRefused: sumRecords(
      all.map((s) => s.upgradesRefused),
      first?.upgradesRefused,
    ),
    // The group has run as long as its oldest worker.
    uptimeSeconds: Math.max(...all.map((s) => s.uptimeSeconds)),
    ...(brokers.length === 0 ? {} : { broker: sumBrokers(brokers) }),
    workers,
  };
}

function sumRecords<K extends string>(list: Record<K, number>[], shape: Record<K, number> | undefined): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of Object.keys(shape ?? {}) as K[]) out[key] = list.reduce<number>((a, r) => a + r[key], 0);
  return out;
}

function sumBrokers(list: BrokerStats[]): BrokerStats {
  const sum = (value: (b: BrokerStats) => number): number => list.reduce((a, b) => a + value(b), 0);
  return {
    pendingBytes: sum((b) => b.pendingBytes),
    pendingPublishes: sum((b) => b.pendingPublishes),
    oldestPendingMs: Math.max(...list.map((b) => b.oldestPendingMs)),
    refusedPushes: sum((b) => b.refusedPushes),
    stalePushes: sum((b) => b.stalePushes),
    degradedPushes: sum((b) => b.degradedPushes),
  };
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createClient } from '@redis/client';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function cli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' }).stdout;
}

/**
 * A Redis Cluster of `masters` masters on free loopback ports, started by this process
 * (so tests stop only servers they started). Returns its URL and a stop function.
 */
export async function startRedisCluster(masters = 3, replicas = 0): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'uidpush-redis-cluster-'));
  const ports = await Promise.all(Array.from({ length: masters * (1 + replicas) }, () => freePort()));
  const servers: ChildProcess[] = ports.map((port) =>
    spawn(
      'redis-server',
      [
        ...['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`],
        // A dead master's replica takes over after about a second, not the default 15.
        ...['--cluster-node-timeout', '1000', '--repl-diskless-sync-delay', '0', '--save', '', '--appendonly', 'no', '--dir', dir],
      ],
      { stdio: 'ignore' },
    ),
  );
  const stop = (): void => {
    for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  };
  const killed = new Set<number>();
  try {
    await until(() => ports.every((p) => cli(p, 'ping').trim() === 'PONG'), 'redis cluster nodes to start');
    spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      {
        encoding: 'utf8',
      },
    );
    await until(() => ports.every((p) => cli(p, 'cluster', 'info').includes('cluster_state:ok')), 'cluster_state:ok');
    if (replicas > 0) {
      // A replica takes over only once it holds its master's data: wait for every link.
      const linked = (): number => ports.filter((p) => cli(p, 'info', 'replication').includes('master_link_status:up')).length;
      await until(() => linked() === masters * replicas, 'replicas in sync');
    }
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    stop,
    killMasterOf(key: string): number {
      const slot = Number(cli(ports[0] ?? 0, 'cluster', 'keyslot', key).trim());
      for (const line of cli(ports[0] ?? 0, 'cluster', 'nodes').split('\n')) {
        const fields = line.split(' ');
        if (!(fields[2] ?? '').includes('master')) continue;
        const owns = fields.slice(8).some((range) => {
          const [from = '-1', to = from] = range.split('-');
          return slot >= Number(from) && slot <= Number(to);
        });
        const port = Number(/:(\d+)@/.exec(fields[1] ?? '')?.[1]);
        if (owns) {
          servers[ports.indexOf(port)]?.kill('SIGKILL');
          killed.add(port);
          return port;
        }
      }
      throw new Error(`no master owns slot ${String(slot)}`);
    },
    async waitHealthy(): Promise<void> {
      const alive = ports.filter((p) => !killed.has(p));
      // Right after a kill the others still say ok: wait until they have seen it fail too.
      const failed = (p: number): boolean =>
        cli(p, 'cluster', 'nodes')
          .split('\n')
          .filter((line) => [...killed].some((k) => line.includes(`:${String(k)}@`)))
          .every((line) => line.includes('fail'));
      await until(
        () => alive.every((p) => failed(p) && cli(p, 'cluster', 'info').includes('cluster_state:ok')),
        'cluster_state:ok after a failover',
        30_000,
      );
    },
  };
}

/** A Redis Cluster started by {@link startRedisCluster}. */
export interface RedisClusterHandle {
  url: string;
  stop(): void;
  /** SIGKILLs the master that owns `key`'s slot; returns its port. */
  killMasterOf(key: string): number;
  /** Resolves once every live node reports cluster_state:ok (after a failover). */
  waitHealthy(): Promise<void>;
}

/** A master, its replica and one Sentinel started by {@link startRedisSentinel}. */
export interface RedisSentinelHandle {
  url: string;
  stop(): void;
  /** SIGKILLs the current master and resolves once Sentinel has promoted the replica. */
  failover(): Promise<void>;
}

/**
 * One Redis master with one replica, watched by one Sentinel, on free loopback ports,
 * started by this process. Returns the `redis+sentinel://` URL for the master
 * `uidpush-master`; Sentinel gives up on a dead master after a second.
 */
export async function startRedisSentinel(): Promise<RedisSentinelHandle> {
  const { writeFile } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'uidpush-redis-sentinel-'));
  const [masterPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const redis = (port: number, ...extra: string[]): ChildProcess =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--repl-diskless-sync-delay',
        '0',
        '--dir',
        dir,
        ...extra,
      ],
      {
        stdio: 'ignore',
      },
    );
  const master = redis(masterPort);
  const replica = redis(replicaPort, '--replicaof', '127.0.0.1', String(masterPort));
  const conf = join(dir, 'sentinel.conf');
  await writeFile(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor uidpush-master 127.0.0.1 ${masterPort} 1`,
      'sentinel down-after-milliseconds uidpush-master 1000',
      'sentinel failover-timeout uidpush-master 5000',
      '',
    ].join('\n'),
  );
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const stop = (): void => {
    for (const s of [master, replica, sentinel]) if (s.exitCode === null) s.kill('SIGKILL');
  };
  const masterNow = (): string => cli(sentinelPort, 'sentinel', 'get-master-addr-by-name', 'uidpush-master');
  try {
    await until(() => masterNow().includes(String(masterPort)), 'sentinel to know the master');
    await until(() => cli(replicaPort, 'info', 'replication').includes('master_link_status:up'), 'the replica in sync');
    // Sentinel learns of replicas from the master's INFO, every 10 s: a master killed
    // before then has no replica to fail over to.
    await until(
      () => cli(sentinelPort, 'sentinel', 'replicas', 'uidpush-master').includes(String(replicaPort)),
      'sentinel to know the replica',
      30_000,
    );
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `redis+sentinel://127.0.0.1:${sentinelPort}/uidpush-master`,
    stop,
    async failover(): Promise<void> {
      master.kill('SIGKILL');
      await until(() => masterNow().includes(String(replicaPort)), 'sentinel to promote the replica', 30_000);
    },
  };
}

/** One redis-server started by {@link startRedisServer}. */
export interface RedisServerHandle {
  url: string;
  /** SIGSTOP: connections stay open, nothing is answered. */
  freeze(): void;
  /** SIGCONT: answers everything it was sent meanwhile. */
  thaw(): void;
  /** SIGKILL. */
  stop(): void;
}

/**
 * A redis-server of this process's own on a free loopback port, so a test may freeze or
 * kill it by its PID (never the shared one on 6379). Resolves once it answers PING.
 */
export async function startRedisServer(): Promise<RedisServerHandle> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const stop = (): void => {
    if (server.exitCode === null && server.signalCode === null) {
      // A stopped process must be continued to act on anything but SIGKILL; send both.
      server.kill('SIGCONT');
      server.kill('SIGKILL');
    }
  };
  try {
    await until(() => cli(port, 'ping').trim() === 'PONG', 'redis-server to start');
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${String(port)}`,
    freeze: () => server.kill('SIGSTOP'),
    thaw: () => server.kill('SIGCONT'),
    stop,
  };
}

/** Deletes what a test cluster left in the Redis at `url` under `namespace` (group sets have no expiry). */
export async function dropNamespace(url: string, namespace: string): Promise<void> {
  const client = createClient({ url });
  await client.connect();
  try {
    for await (const keys of client.scanIterator({ MATCH: `${namespace}:*`, COUNT: 500 })) {
      if (keys.length > 0) await client.del(keys);
    }
  } finally {
    client.destroy();
  }
}

/** A redis-server started by {@link startPersistentRedis}: stopped and started again on its port, its data kept. */
export interface PersistentRedisHandle {
  url: string;
  /** SIGKILL; resolves once the process is gone. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port and directory; resolves once it answers PING. */
  restart(): Promise<void>;
  /** SIGKILL, at cleanup. */
  stop(): void;
}

/**
 * A redis-server of this process's own on a free loopback port with the append-only file on
 * (`appendfsync always`, in a temp dir): what it acknowledged survives a SIGKILL and is
 * there when it is started again. Redis's durability is Redis's configuration, not uidpush's.
 */
export async function startPersistentRedis(): Promise<PersistentRedisHandle> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'uidpush-redis-aof-'));
  let server: ChildProcess | undefined;
  const alive = (): boolean => server !== undefined && server.exitCode === null && server.signalCode === null;
  const start = async (): Promise<void> => {
    server = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'],
      { stdio: 'ignore' },
    );
    await until(() => cli(port, 'ping').trim() === 'PONG', 'redis-server to start');
  };
  const stop = (): void => {
    if (alive()) server?.kill('SIGKILL');
  };
  try {
    await start();
  } catch (err) {
    stop();
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${String(port)}`,
    async kill(): Promise<void> {
      const s = server;
      if (s === undefined || !alive()) return;
      const gone = new Promise((resolve) => s.once('exit', resolve));
      s.kill('SIGKILL');
      await gone;
    },
    restart: start,
    stop,
  };
}

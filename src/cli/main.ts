#!/usr/bin/env node
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { createIpcBroker, createWorkerGroup, MemoryCluster, servePrimary } from '../broker/ipc.js';
import { pino } from 'pino';
import { ProgramErrorCode, UidpushError } from '../core/errors.js';
import type { Logger } from '../core/types.js';
import { createServer, ListenError, type Listener } from '../server/server.js';
import { API_COMMANDS, API_USAGE, CliError, runApiCommand } from './api-commands.js';
import { loadServeConfig, SERVE_FLAGS, withFlagNames } from './config.js';
import { optionsHelp } from './options-doc.js';
import { packageVersion } from './version.js';

const USAGE = `Usage: uidpush <command> [options]

  serve                               run the push server: the seed text protocol on
                                      ws://127.0.0.1:1234, the server API on 127.0.0.1:1235
                                      ('uidpush serve --help' for its options)
  -v, --version                       print the version

${API_USAGE}`;

const SERVE_USAGE = `Usage: uidpush serve [options]

Each option is a flag, an environment variable (in parentheses) or a key of the JSON config
file (--config). Flags win over variables, variables over the file, the file over defaults.
${optionsHelp()}
`;

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (API_COMMANDS.has(command)) {
    try {
      await runApiCommand(command, rest, process.env, (line) => process.stdout.write(`${line}\n`));
      return 0;
    } catch (err) {
      if (err instanceof CliError) {
        process.stderr.write(`uidpush ${command}: ${err.message}\n`);
        return err.exitCode;
      }
      throw err;
    }
  }
  if (command !== 'serve') {
    process.stderr.write(`uidpush: unknown command '${command}'\n\n${USAGE}\n`);
    return 2;
  }
  return serve(rest);
}

async function serve(args: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({ args, options: SERVE_FLAGS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    process.stderr.write(`uidpush serve: ${(err as Error).message}\n\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (flags.help === true) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  let config;
  try {
    config = await loadServeConfig(flags, process.env);
  } catch (err) {
    if (err instanceof UidpushError) {
      process.stderr.write(`uidpush serve: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = pino({ name: 'uidpush', level: config.logLevel });
  const tls = config.server.tlsCert !== undefined;
  if (config.workers > 0 && cluster.isPrimary) return runPrimary(config.workers, config.server.shutdownGrace, tls, logger);
  // A worker joins its siblings through the primary, unless a Redis joins every node.
  const broker =
    cluster.isWorker && config.server.redis === undefined ? createIpcBroker({ timeout: config.server.brokerTimeout }) : undefined;
  // Stats and metrics answer for every worker, whichever takes the request; on Redis the
  // workers' presence also goes to the primary, which counts the group's distinct uids.
  const group = cluster.isWorker ? createWorkerGroup({ presence: config.server.redis !== undefined }) : undefined;
  let server;
  try {
    server = createServer({
      ...config.server,
      logger,
      ...(broker === undefined ? {} : { broker }),
      ...(group === undefined ? {} : { group }),
    });
  } catch (err) {
    // The TLS files, read again: changed since loadServeConfig checked them.
    if (err instanceof UidpushError && err.code === ProgramErrorCode.InvalidConfig) {
      process.stderr.write(`uidpush serve: ${withFlagNames(err).message}\n`);
      return 2;
    }
    throw err;
  }
  if (tls) {
    // Only with TLS: without it SIGHUP keeps node's default (exit), as before.
    process.on('SIGHUP', () => {
      server.reloadTls().catch((err: unknown) => {
        logger.error({ err }, 'TLS reload failed; still serving the previous certificate');
      });
    });
  }
  // Handlers go in before listening, so a signal that follows the 'listening' line at once
  // is already a graceful shutdown.
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        resolve(1);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      server.close().then(
        () => {
          resolve(0);
        },
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  try {
    await server.listen();
  } catch (err) {
    if (!(err instanceof UidpushError)) {
      logger.fatal({ err }, 'cannot listen');
      return 1;
    }
    // A listener that cannot bind exits 1; a token key that cannot be read is bad
    // configuration, found only once loaded: 2.
    const failure: StartFailure =
      err instanceof ListenError
        ? { uidpushCli: 'start-failed', line: `uidpush serve: ${err.message}; ${LISTEN_FLAGS[err.listener]}`, code: 1 }
        : { uidpushCli: 'start-failed', line: `uidpush serve: ${err.message}`, code: 2 };
    // Under --workers the primary says it once and stops, rather than forking again.
    if (cluster.isWorker && process.send !== undefined) {
      await new Promise<void>((resolve) => {
        process.send?.(failure, undefined, undefined, () => {
          resolve();
        });
      });
    } else {
      process.stderr.write(`${failure.line}\n`);
    }
    return failure.code;
  }
  return stopped;
}

/** What to change when a listener cannot bind. */
const LISTEN_FLAGS: Record<Listener, string> = {
  websocket: 'choose another with --port (or --host)',
  api: "choose another with --api-port (or --api-host), or 'off'",
  inner: "choose another with --inner-port, or 'off'",
};

/** A worker's word to the primary that it could not start: the line for stderr, the exit code. */
interface StartFailure {
  uidpushCli: 'start-failed';
  line: string;
  code: number;
}

function isStartFailure(msg: unknown): msg is StartFailure {
  return typeof msg === 'object' && msg !== null && (msg as { uidpushCli?: unknown }).uidpushCli === 'start-failed';
}

/**
 * The primary of `serve --workers N`: forks the workers (they share the ports), relays
 * between them, restarts one that dies (its uids go offline at once), forwards SIGHUP
 * (with TLS: each worker reloads its certificate), and on SIGINT or SIGTERM stops them
 * all and exits 0.
 */
function runPrimary(workers: number, graceMs: number, tls: boolean, logger: Logger): Promise<number> {
  const shared = new MemoryCluster();
  const live = new Map<number, { stop: () => Promise<void>; exited: Promise<void> }>();
  let stopping = false;
  let onStartFailure: (failure: StartFailure) => void = () => undefined;
  const fork = (): void => {
    const worker = cluster.fork();
    const stop = servePrimary(shared, worker, logger);
    worker.on('message', (msg: unknown) => {
      if (isStartFailure(msg)) onStartFailure(msg);
    });
    const exited = new Promise<void>((resolve) => {
      worker.once('exit', (code, signal) => {
        void stop();
        live.delete(worker.id);
        resolve();
        if (!stopping) {
          logger.warn({ worker: worker.id, code, signal }, 'worker died; starting another');
          fork();
        }
      });
    });
    live.set(worker.id, { stop, exited });
  };
  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers }, 'primary: workers started');
  if (tls) {
    // Each worker holds its own TLS servers (the ports are shared, the contexts are not).
    process.on('SIGHUP', () => {
      logger.info({ workers: live.size }, 'primary: SIGHUP, workers reload their TLS certificate');
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    });
  }
  return new Promise<number>((resolve) => {
    const stopAll = (code: number): void => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
      const all = Promise.all([...live.values()].map((w) => w.exited));
      const timeout = new Promise((r) => setTimeout(r, graceMs + 5000).unref());
      void Promise.race([all, timeout]).then(() => {
        resolve(code);
      });
    };
    // Every worker binds the same addresses with the same options: one that cannot start
    // will not be the last, and a new fork would fail the same way.
    onStartFailure = ({ line, code }) => {
      if (stopping) return;
      process.stderr.write(`${line}\n`);
      stopAll(code);
    };
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      logger.info({ signal }, 'primary: stopping workers');
      stopAll(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Nothing should outlive shutdown; if a stray handle does, it must not hold the exit.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`uidpush: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

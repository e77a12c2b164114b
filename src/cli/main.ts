#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { UidpushError } from '../core/errors.js';
import { createServer } from '../server/server.js';
import { API_COMMANDS, API_USAGE, CliError, runApiCommand } from './api-commands.js';
import { loadServeConfig, optionsHelp, SERVE_FLAGS } from './config.js';

const USAGE = `Usage: uidpush <command> [options]

  serve                               run the push server: the seed text protocol on
                                      ws://127.0.0.1:1234, the server API on 127.0.0.1:1235
                                      ('uidpush serve --help' for its options)

${API_USAGE}`;

const SERVE_USAGE = `Usage: uidpush serve [options]

Options (flag, then environment variable; flags win over variables, variables over the
config file, the file over defaults):
  --config <file.json>     UIDPUSH_CONFIG     JSON object with the option names as keys
  --log-level <level>      UIDPUSH_LOG_LEVEL  fatal|error|warn|info|debug|trace|silent
${optionsHelp()}

--api-port and --inner-port take 'off' to turn that listener off.

See the README's configuration table for defaults and meaning.`;

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
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
  const server = createServer({ ...config.server, logger });
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
    logger.fatal({ err }, 'cannot listen');
    return 1;
  }
  return stopped;
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

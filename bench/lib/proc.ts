/**
 * Process plumbing and CPU accounting shared by every bench: one way to start a child and
 * wait for its ready message, to stop it by pid, to read a process's CPU time and the
 * machine's, and to describe the machine. Linux: /proc is read directly.
 *
 * How the figures are computed (also in bench/README.md, "How figures are computed"):
 * - a process's CPU: utime + stime of /proc/<pid>/stat (fields 14 and 15), in clock ticks,
 *   divided by CLK_TCK (`getconf CLK_TCK`, 100 on Linux): seconds, at 10 ms resolution;
 * - the machine's CPU: the first (`cpu`) line of /proc/stat, in ticks; busy = user + nice +
 *   system + irq + softirq, irq = irq + softirq, total = busy + idle + iowait + steal
 *   (guest time is already inside user, so it is not added again); a share between two
 *   readings is the difference over the total's difference, times the number of cores, so
 *   200% is both cores of a 2-core machine.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

/** Clock ticks per second of /proc's CPU times. */
export const CLK_TCK: number = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU seconds a process has used (its threads included); NaN if it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is the state (field 3), so utime (14) and stime (15) are 11 and 12.
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

/** The machine's CPU time since boot, in clock ticks, from the `cpu` line of /proc/stat. */
export interface MachineCpu {
  /** user + nice. */
  user: number;
  system: number;
  /** irq + softirq: network processing the kernel charges to no process. */
  irq: number;
  steal: number;
  /** idle + iowait. */
  idle: number;
  /** user + system + irq. */
  busy: number;
  /** busy + idle + steal. */
  total: number;
}

/** Reads the machine's CPU time; undefined when /proc/stat cannot be read. */
export function machineCpu(): MachineCpu | undefined {
  try {
    const first = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0] ?? '';
    // cpu user nice system idle iowait irq softirq steal guest guest_nice
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = first
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    const busy = user + nice + system + irq + softirq;
    return { user: user + nice, system, irq: irq + softirq, steal, idle: idle + iowait, busy, total: busy + idle + iowait + steal };
  } catch {
    return undefined;
  }
}

/** Each field's share of the time between two readings, in % of one core (NaN if unknown). */
export function machinePct(a: MachineCpu | undefined, b: MachineCpu | undefined): Record<keyof MachineCpu, number> {
  const ticks = a === undefined || b === undefined ? 0 : b.total - a.total;
  const pct = (k: keyof MachineCpu): number =>
    a === undefined || b === undefined || ticks <= 0 ? NaN : ((b[k] - a[k]) / ticks) * 100 * cpus().length;
  return {
    user: pct('user'),
    system: pct('system'),
    irq: pct('irq'),
    steal: pct('steal'),
    idle: pct('idle'),
    busy: pct('busy'),
    total: pct('total'),
  };
}

/** `2 x <CPU model>, 8 GiB, Node v20.x`: the line every bench prints with its figures. */
export function describeMachine(): string {
  return `${String(cpus().length)} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
}

/** The pids of `pid`'s children (`pgrep -P`): a `--workers` primary's workers; [] when none. */
export function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    // pgrep exits 1 when it finds none.
    return [];
  }
}

/** Whether a child has neither exited nor been killed. */
export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves true once `child` exits, false after `ms`. */
export function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (!alive(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

const started = new Set<ChildProcess>();
let hooked = false;

/** SIGKILLs every child {@link forkReady} started that still runs, by its pid. */
export function killStarted(): void {
  for (const child of started) if (alive(child)) child.kill('SIGKILL');
  started.clear();
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killStarted);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killStarted();
      process.exit(130);
    });
  }
}

/** Options of {@link forkReady}. */
export interface ForkOptions {
  env?: Record<string, string>;
  execArgv?: string[];
  serialization?: 'json' | 'advanced';
  /** How long to wait for the ready message. @defaultValue 60000 */
  timeoutMs?: number;
}

/**
 * Forks a TypeScript bench script (through tsx) with an IPC channel and resolves with its
 * first message, its ready line (`{ ready: true, ... }`). The child is ended (SIGKILL)
 * when this process exits, on error, signal or success.
 */
/** The ready message of a bench child: the ports it listens on, when a server. */
export interface Ready {
  ready: boolean;
  port?: number;
  apiPort?: number;
  innerPort?: number;
}

export function forkReady(script: string, options: ForkOptions = {}): Promise<{ child: ChildProcess; ready: Ready }> {
  hookExit();
  const child = fork(script, [], {
    execArgv: ['--import', 'tsx', ...(options.execArgv ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: options.serialization ?? 'json',
  });
  started.add(child);
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${script}: not ready in ${String(timeoutMs)} ms`));
    }, timeoutMs);
    child.once('message', (msg: Ready) => {
      clearTimeout(timer);
      resolve({ child, ready: msg });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${String(code ?? signal)}) before it was ready`));
    });
  });
}

/** Stops a child: `signal` (SIGKILL by default), then SIGKILL if it has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 5000): Promise<void> {
  if (alive(child)) child.kill(signal);
  if (!(await exited(child, graceMs)) && alive(child)) {
    child.kill('SIGKILL');
    await exited(child, 5000);
  }
  started.delete(child);
}

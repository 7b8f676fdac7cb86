/**
 * `coldstart prefetch … --hold` as a real process (it runs until stopped): started with --json, its document read
 * once it is held, its stderr lines watched, its locked memory read from /proc, and stopped by a signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));

export interface Holder {
  child: ChildProcess;
  /** The --json document, printed once the files are held. */
  doc: Record<string, unknown> & { hold: { files: number; bytes: number; seconds: number; pid: number } };
  stderr: () => string;
  /** The process's locked memory (VmLck), in bytes. */
  lockedBytes: () => number;
  /** Resolves once stderr holds a line matching `re` (rejects after `ms`). */
  waitFor: (re: RegExp, ms?: number) => Promise<void>;
  /** Sends the signal; resolves with the exit code (or null) once it has ended. */
  stop: (sig?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `prefetch ARGS --hold --json` as a child process (through `wrap` when given): its output so far and its end. */
function spawnHold(args: string[], wrap: string[]) {
  const argv = [...wrap, process.execPath, bin, 'prefetch', ...args, '--hold', '--json'];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  return { child, out: () => out, err: () => err, ended };
}

/** Starts `prefetch ARGS --hold --json` (through `wrap`, e.g. ['prlimit', …], when given) and waits until it holds. */
export async function startHold(args: string[], wrap: string[] = []): Promise<Holder> {
  const { child, out, err, ended } = spawnHold(args, wrap);
  const waitFor = async (re: RegExp, ms = 15_000): Promise<void> => {
    for (const t0 = Date.now(); !re.test(err()); ) {
      if (Date.now() - t0 > ms) throw new Error(`no line matching ${re} within ${ms} ms; stderr: ${err()}`);
      if (child.exitCode !== null) throw new Error(`prefetch --hold ended (${child.exitCode}) before ${re}; stderr: ${err()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  let doc: Holder['doc'] | undefined;
  for (const t0 = Date.now(); !doc; ) {
    try {
      doc = JSON.parse(out());
    } catch {
      if (child.exitCode !== null || Date.now() - t0 > 30_000) {
        if (child.exitCode === null) child.kill('SIGKILL'); // never held within 30 s
        const r = await ended;
        throw Object.assign(new Error(`prefetch --hold ended (${r.code}) before holding: ${err()}`), { code: r.code, stderr: err() });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    child,
    doc,
    stderr: err,
    lockedBytes: () => Number(/VmLck:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) * 1024,
    waitFor,
    stop: async (sig = 'SIGTERM') => {
      child.kill(sig);
      return ended;
    },
  };
}

/** Runs `prefetch ARGS --hold --json` expecting it to end by itself (a refusal): its code and stderr. */
export async function holdRefused(args: string[], wrap: string[] = []): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const { child, out, err, ended } = spawnHold(args, wrap);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const { code } = await ended;
  clearTimeout(timer);
  return { code, stderr: err(), stdout: out() };
}

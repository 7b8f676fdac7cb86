import { expect } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { run } from '../../src/cli/main.js';
import { makeContext, type Runner } from '../../src/commands/context.js';
import { ExitCode, isColdstartError } from '../../src/core/errors.js';
import type { ProcessLike } from '../../src/core/output.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with a fake process (size-limit style); no TTY, no colour unless asked. */
export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; tty?: boolean; columns?: number | null } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const proc: ProcessLike = {
    argv: ['node', 'coldstart', ...args],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    cwd: () => opts.cwd ?? process.cwd(),
    // `columns: null`: like a real pipe, no width (then COLUMNS decides)
    stdout: { write: (s: string) => ((stdout += s), true), isTTY: opts.tty ?? false, ...(opts.columns === null ? {} : { columns: opts.columns ?? 120 }) },
    stderr: { write: (s: string) => ((stderr += s), true), isTTY: opts.tty ?? false },
  };
  const code = await run(proc);
  return { code, stdout, stderr };
}

/**
 * Runs one command in-process with the engines given: the command's register function (registerProfile,
 * registerCache, …) with the same commander wiring and runner as src/cli/main.ts, and the engines passed in.
 */
export async function runCommandWith<E>(
  register: (program: Command, run: Runner, engines: E) => unknown,
  engines: E,
  command: string,
  args: string[],
  opts: { env?: Record<string, string | undefined> } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const proc: ProcessLike = {
    argv: ['node', 'coldstart', command, ...args],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    cwd: () => process.cwd(),
    stdout: { write: (s: string) => ((stdout += s), true), isTTY: false, columns: 120 },
    stderr: { write: (s: string) => ((stderr += s), true), isTTY: false },
  };
  let code: number = ExitCode.OK;
  const program = new Command().option('--json').exitOverride();
  register(
    program,
    (body) =>
      async (...a: unknown[]) => {
        const cmd = a[a.length - 1] as Command;
        const g = cmd.optsWithGlobals() as { json?: boolean };
        const ctx = makeContext(proc, { json: !!g.json, quiet: false, color: false, debug: false }, new AbortController().signal);
        try {
          code = await body(ctx, ...(a as never));
        } catch (e) {
          ctx.out.error(e);
          code = isColdstartError(e) ? e.exitCode : ExitCode.ENV;
        }
      },
    engines,
  );
  await program.parseAsync([command, ...args], { from: 'user' });
  return { code, stdout, stderr };
}

/**
 * The first error line of a run's stderr (lines that start with `coldstart:`), skipping the progress lines a slow
 * run prints before it (a download that takes over a second reports its progress on a non-TTY stderr too).
 */
export function firstErrorLine(stderr: string): string {
  return stderr.split('\n').find((l) => l.startsWith('coldstart:')) ?? '';
}

export interface ErrorDoc {
  code: string;
  exitCode: number;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

/**
 * The error a `--json` run ended with (its one `coldstart/error@1` document): the stable `code` and exit code to
 * assert on instead of the wording, and the message where a name in it (a file, a flag) is the behaviour.
 */
export function jsonError(r: CliResult): ErrorDoc {
  let doc: { schema?: string; error?: ErrorDoc };
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${r.code}): ${r.stdout.slice(0, 300)}\n${r.stderr.slice(0, 600)}`);
  }
  if (doc.schema !== 'coldstart/error@1' || !doc.error) throw new Error(`not an error document (exit ${r.code}): ${r.stdout.slice(0, 300)}`);
  expect(doc.error.exitCode, 'the exit code the document names').toBe(r.code);
  return doc.error;
}

/** How a CLI child process ended (`runChild`). */
export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));

/**
 * The built CLI (bin/coldstart.js) as a child process, for what needs a real process (signals, ulimits, hangs): through
 * `sh -c` when `shell` wraps it (e.g. to lower `ulimit -n`), `prefix` before all (e.g. `unshare -m`: a mount namespace
 * of its own, where `shell` may mount), `node` adds Node flags, `env` is added to this process's, `onSpawn` gets a
 * way to signal it, and it is killed with SIGKILL at `deadlineMs` whatever it is doing.
 */
export function runChild(args: string[], opts: { cwd?: string; deadlineMs?: number; shell?: string; prefix?: string[]; node?: string[]; env?: Record<string, string>; onSpawn?: (kill: (s: NodeJS.Signals) => void) => void } = {}): Promise<ChildRun> {
  const t0 = Date.now();
  const script = [...(opts.node ?? []), BIN, ...args];
  const inner = opts.shell ? ['sh', '-c', `${opts.shell} && exec "$0" "$@"`, process.execPath, ...script] : [process.execPath, ...script];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...inner];
  const child = spawn(cmd!, rest, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  opts.onSpawn?.((s) => void child.kill(s));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.deadlineMs ?? 30_000);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (Date.now() - t0) / 1000 });
    }),
  );
}

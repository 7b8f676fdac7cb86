import { run } from '../../src/cli.js';
import type { ProcessLike } from '../../src/core/output.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with a fake process (size-limit style); no TTY, no colour unless asked. */
export async function runCli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; tty?: boolean } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const proc: ProcessLike = {
    argv: ['node', 'coldstart', ...args],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
    cwd: () => opts.cwd ?? process.cwd(),
    stdout: { write: (s: string) => ((stdout += s), true), isTTY: opts.tty ?? false, columns: 120 },
    stderr: { write: (s: string) => ((stderr += s), true), isTTY: opts.tty ?? false },
  };
  const code = await run(proc);
  return { code, stdout, stderr };
}

/**
 * The first error line of a run's stderr (lines that start with `coldstart:`), skipping the progress lines a slow
 * run prints before it (a download that takes over a second reports its progress on a non-TTY stderr too).
 */
export function firstErrorLine(stderr: string): string {
  return stderr.split('\n').find((l) => l.startsWith('coldstart:')) ?? '';
}

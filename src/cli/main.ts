import { Command, CommanderError } from 'commander';
import { ColdstartError, ExitCode, isColdstartError } from '../core/errors.js';
import { Output, type GlobalOptions, type ProcessLike } from '../core/output.js';
import { settleInterrupted } from '../core/atomic.js';
import { version } from '../core/version.js';
import { makeContext, type Runner } from '../commands/context.js';
import { registerDoctor } from '../commands/doctor.js';
import { registerProfile } from '../commands/profile.js';
import { registerCache } from '../commands/cache.js';
import { registerCacheArtifacts } from '../commands/artifacts.js';
import { registerConvert } from '../commands/convert.js';
import { registerWarmup } from '../commands/warmup.js';
import { registerReport } from '../commands/report.js';
import { registerSnapshot } from '../commands/snapshot.js';
import { registerPrefetch } from '../commands/prefetch.js';
import { registerOptimize } from '../commands/optimize.js';

export function buildProgram(proc: ProcessLike, setExit: (code: number) => void, signal: AbortSignal): Command {
  const program = new Command();
  program
    .name('coldstart')
    .description('Profile and cut the cold-start time of GPU inference: container, cuda-init, download, gpu-load, warmup.')
    .version(version, '-V, --version')
    .option('--json', 'print exactly one JSON document to stdout')
    .option('-q, --quiet', 'print results only: no progress, hints or warnings')
    .option('--no-color', 'disable colours (NO_COLOR is honoured too)')
    .option('--verbose', 'the long form of notes: an error\'s own words, the full why')
    .option('--debug', 'show stack traces and internal details')
    .exitOverride()
    // Descriptions wrap even beside a long usage column on an 80-column terminal (commander's default needs 40).
    .configureHelp({ minWidthToWrap: 24 })
    .configureOutput({
      writeOut: (s) => void proc.stdout.write(s),
      writeErr: (s) => void proc.stderr.write(s),
      // Commander's own errors ("error: missing required argument…") read like every other coldstart error.
      outputError: (s, write) => write(s.replace(/^error: /, 'coldstart: ')),
      // Help wraps at the terminal's width, else $COLUMNS, else 100 (a pipe or CI log): never 190-column lines.
      getOutHelpWidth: () => helpWidth(proc),
      getErrHelpWidth: () => helpWidth(proc),
    });

  const run: Runner =
    (body) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals() as Partial<GlobalOptions>;
      const global: GlobalOptions = { json: !!g.json, quiet: !!g.quiet, color: g.color !== false, debug: !!g.debug, verbose: !!g.verbose };
      const ctx = makeContext(proc, global, signal);
      try {
        setExit(await body(ctx, ...(args as never)));
      } catch (e) {
        ctx.out.error(e);
        setExit(isColdstartError(e) ? e.exitCode : ExitCode.ENV);
      }
    };

  for (const register of [registerProfile, registerCache, registerCacheArtifacts, registerConvert, registerWarmup, registerPrefetch, registerDoctor, registerReport, registerSnapshot, registerOptimize]) register(program, run);
  return program;
}

/** The width help text wraps at: the terminal's, else $COLUMNS, else 100; at least 80 (narrower, a usage column leaves no room to wrap). */
function helpWidth(proc: ProcessLike): number {
  const cols = proc.stdout.columns || Number(proc.env.COLUMNS) || 100;
  return Math.max(80, Math.min(cols, 200));
}

/** After a usage error, every command prints its own usage line (prefixed, like every error line) and where to read more. */
function showUsageAfterErrors(cmd: Command, path: string[] = []): void {
  const name = [...path, cmd.name()].join(' ');
  cmd.showHelpAfterError(`coldstart: usage: ${name} ${cmd.usage()}\ncoldstart: see \`${name} --help\``);
  for (const sub of cmd.commands) showUsageAfterErrors(sub, [...path, cmd.name()]);
}

/**
 * Whether a global flag is on the command line before commander has parsed it (a usage error stops the parse):
 * coldstart's own arguments only, up to `--` (what follows is a wrapped server's command line).
 */
function hasGlobalFlag(argv: readonly string[], flag: '--json' | '--debug'): boolean {
  const own = argv.slice(2);
  const end = own.indexOf('--');
  return (end < 0 ? own : own.slice(0, end)).includes(flag);
}

/** Runs the CLI with an injected process (tests pass a fake one); resolves to the exit code. */
export async function run(proc: ProcessLike, signal: AbortSignal = new AbortController().signal): Promise<number> {
  let code: number = ExitCode.OK;
  const program = buildProgram(proc, (c) => (code = c), signal);
  showUsageAfterErrors(program);
  let jsonDone = false;
  const out = () => new Output(proc, { json: hasGlobalFlag(proc.argv, '--json') && !jsonDone, quiet: false, color: false, debug: hasGlobalFlag(proc.argv, '--debug') });
  program.hook('preAction', () => {
    // From here on a command runs: its runner prints the error document itself.
    jsonDone = true;
  });
  try {
    await program.parseAsync(proc.argv.slice(2), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return ExitCode.OK;
      // A command group run without its subcommand (`coldstart`, `coldstart report`) printed its help to stderr: usage.
      if (e.code === 'commander.help' && e.exitCode === 0) return ExitCode.OK;
      // Commander printed its line and the usage to stderr; in --json mode stdout still gets its one document.
      if (hasGlobalFlag(proc.argv, '--json') && !jsonDone) {
        const message = e.code === 'commander.help' ? 'a subcommand is required (see --help)' : e.message.replace(/^error: /, '');
        const reason = e.code === 'commander.help' ? 'missingSubcommand' : e.code.replace(/^commander\./, '');
        const err = new ColdstartError('USAGE', message, { hint: 'The usage line is on stderr; --help shows every option.', details: { reason } });
        out().writeJson({ schema: 'coldstart/error@1', error: err.toJSON() });
      }
      return ExitCode.USAGE;
    }
    out().error(e instanceof ColdstartError ? e : new ColdstartError('INTERNAL', (e as Error)?.message ?? String(e), { cause: e }));
    return isColdstartError(e) ? e.exitCode : ExitCode.ENV;
  }
  return code;
}

/** Exit status of a process ended by a signal, as a shell reports it: 128 + the signal number. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGPIPE: 141 } as const;

/** Entry point used by bin/coldstart.js with the real process. */
export async function main(proc: NodeJS.Process): Promise<void> {
  const ac = new AbortController();
  // Whether anything reached stdout: in --json mode a run ended by a signal before its document still prints one.
  let stdoutUsed = false;
  const io: ProcessLike = {
    argv: proc.argv,
    env: proc.env,
    cwd: () => proc.cwd(),
    stdout: {
      write: (s: string) => ((stdoutUsed = true), proc.stdout.write(s)),
      get isTTY() {
        return proc.stdout.isTTY;
      },
      get columns() {
        return proc.stdout.columns;
      },
    },
    stderr: proc.stderr,
  };
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => () => {
    ac.abort(new ColdstartError('INTERRUPTED', `interrupted by ${sig}`));
    const { removed, kept } = settleInterrupted();
    writeQuietly(proc.stderr, `coldstart: interrupted (${sig})${interruptedDetail(removed, kept)}\n`);
    if (hasGlobalFlag(proc.argv, '--json') && !stdoutUsed) {
      // The exit status is the shell's 128 + signal, not INTERRUPTED's own 3.
      const error = { ...new ColdstartError('INTERRUPTED', `interrupted by ${sig}`, { details: { signal: sig } }).toJSON(), exitCode: SIGNAL_EXIT[sig] };
      writeQuietly(proc.stdout, `${JSON.stringify({ schema: 'coldstart/error@1', error }, null, 2)}\n`);
    }
    proc.exit(SIGNAL_EXIT[sig]);
  };
  proc.once('SIGINT', onSignal('SIGINT'));
  proc.once('SIGTERM', onSignal('SIGTERM'));
  // The reader went away (`coldstart … | head -1`): stop quietly, as a Unix tool killed by SIGPIPE does.
  const onStreamError = (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    settleInterrupted();
    proc.exit(SIGNAL_EXIT.SIGPIPE);
  };
  proc.stdout.on('error', onStreamError);
  proc.stderr.on('error', onStreamError);
  proc.exitCode = await run(io, ac.signal);
  // The run is over: a handle something left open (a server's half-read response, a child's pipe) must not hold
  // the process. The timer is unref'd, so a clean run exits at once as always; a held one ends 2 s later.
  setTimeout(() => proc.exit(), 2000).unref();
}

/** What an interrupted run left, truthfully: temporaries removed, partial downloads kept for the next run to resume. */
function interruptedDetail(removed: number, kept: number): string {
  const s = (n: number) => (n === 1 ? '' : 's');
  return `${removed ? `; partial output removed (${removed} temporary file${s(removed)})` : ''}${kept ? `; ${kept} partial download${s(kept)} kept for resume (the same command continues from ${kept === 1 ? 'it' : 'them'})` : ''}`;
}

function writeQuietly(stream: NodeJS.WriteStream, s: string): void {
  try {
    stream.write(s);
  } catch {
    // stderr already closed: nothing more to say.
  }
}

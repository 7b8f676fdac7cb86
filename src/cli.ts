import { Command, CommanderError } from 'commander';
import { ColdstartError, ExitCode, isColdstartError } from './core/errors.js';
import { Output, type GlobalOptions, type ProcessLike } from './core/output.js';
import { cleanupTemps } from './core/atomic.js';
import { version } from './core/version.js';
import { makeContext, type Runner } from './commands/context.js';
import { registerDoctor } from './commands/doctor.js';
import { registerProfile } from './commands/profile.js';
import { registerCache } from './commands/cache.js';
import { registerCacheArtifacts } from './commands/artifacts.js';
import { registerConvert } from './commands/convert.js';
import { registerWarmup } from './commands/warmup.js';
import { registerReport } from './commands/report.js';
import { registerSnapshot } from './commands/snapshot.js';
import { registerPrefetch } from './commands/prefetch.js';

export function buildProgram(proc: ProcessLike, setExit: (code: number) => void, signal: AbortSignal): Command {
  const program = new Command();
  program
    .name('coldstart')
    .description('Profile and cut the cold-start time of GPU inference: container, cuda-init, download, gpu-load, warmup.')
    .version(version, '-V, --version')
    .option('--json', 'print exactly one JSON document to stdout')
    .option('-q, --quiet', 'print results only: no progress, hints or warnings')
    .option('--no-color', 'disable colours (NO_COLOR is honoured too)')
    .option('--debug', 'show stack traces and internal details')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void proc.stdout.write(s),
      writeErr: (s) => void proc.stderr.write(s),
    });

  const run: Runner =
    (body) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals() as Partial<GlobalOptions>;
      const global: GlobalOptions = { json: !!g.json, quiet: !!g.quiet, color: g.color !== false, debug: !!g.debug };
      const ctx = makeContext(proc, global, signal);
      try {
        setExit(await body(ctx, ...(args as never)));
      } catch (e) {
        ctx.out.error(e);
        setExit(isColdstartError(e) ? e.exitCode : ExitCode.ENV);
      }
    };

  for (const register of [registerProfile, registerCache, registerCacheArtifacts, registerConvert, registerWarmup, registerPrefetch, registerDoctor, registerReport, registerSnapshot]) register(program, run);
  return program;
}

/** Runs the CLI with an injected process (tests pass a fake one); resolves to the exit code. */
export async function run(proc: ProcessLike, signal: AbortSignal = new AbortController().signal): Promise<number> {
  let code: number = ExitCode.OK;
  const program = buildProgram(proc, (c) => (code = c), signal);
  try {
    await program.parseAsync(proc.argv.slice(2), { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    const out = new Output(proc, { json: proc.argv.includes('--json'), quiet: false, color: false, debug: proc.argv.includes('--debug') });
    out.error(e instanceof ColdstartError ? e : new ColdstartError('INTERNAL', (e as Error)?.message ?? String(e), { cause: e }));
    return isColdstartError(e) ? e.exitCode : ExitCode.ENV;
  }
  return code;
}

/** Entry point used by bin/coldstart.js with the real process. */
export async function main(proc: NodeJS.Process): Promise<void> {
  const ac = new AbortController();
  const onSignal = (sig: string) => () => {
    ac.abort(new ColdstartError('INTERRUPTED', `interrupted by ${sig}`));
    cleanupTemps();
    proc.stderr.write(`coldstart: interrupted (${sig}); partial output removed\n`);
    proc.exit(ExitCode.ENV);
  };
  proc.once('SIGINT', onSignal('SIGINT'));
  proc.once('SIGTERM', onSignal('SIGTERM'));
  proc.exitCode = await run(proc as unknown as ProcessLike, ac.signal);
}

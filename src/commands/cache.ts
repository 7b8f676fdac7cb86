import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addBudgetOptions, budgetFlags, type BudgetFlagValues, type Context, type Runner } from './context.js';
import { tellVerdict, verdictExitCode, type BudgetFlags } from '../core/emit.js';
import { ColdstartError, ExitCode, invalidArg } from '../core/errors.js';
import { dirFlag, intFlag } from '../core/flags.js';
import { hubCacheDir, hfOffline } from '../hub/env.js';
import type { RepoType } from '../hub/api.js';
import { convertCheckpoint } from '../convert/convert.js';
import { downloadRepo } from '../cache/download.js';
import { cacheRepo, cacheRepoId, guardLocalDir, type CacheEngines, type CacheRequest, type CacheRun } from '../cache/run.js';
import { checkRevision } from '../cache/layout.js';
import type { DownloadEvent } from '../cache/types.js';
import { listCache } from '../cache/scan.js';
import { verifyRepo } from '../cache/verify.js';
import { removeRepo } from '../cache/remove.js';
import { cacheLabel, cacheVerdict, downloadDoc, downloadLines, eventLine, interruptedNote, lsDoc, lsLines, rmDoc, rmLines, verifyDoc, verifyLines, type Line } from '../cache/report.js';

export type { CacheEngines } from '../cache/run.js';
export const defaultCacheEngines: CacheEngines = { downloadRepo, convertCheckpoint };

/** The flags as commander gives them (strings); parseCache turns them into a CacheRequest. */
type CacheFlags = BudgetFlagValues & { revision?: string; localDir?: string; include?: string[]; exclude?: string[]; allFiles?: boolean; concurrency: string; retries: string; toSafetensors?: boolean } & {
  repoType?: string; token?: string; cacheDir?: string; forceDownload?: boolean; dryRun?: boolean;
};

/** The flags, once, into typed options; `hf download`'s --cache-dir and --token override HF_HUB_CACHE / HF_TOKEN. */
function parseCache(ctx: Context, arg: string, filenames: string[], f: CacheFlags): CacheRequest {
  const { repo, alias } = cacheRepoId(arg);
  const repoType = (f.repoType ?? 'model') as RepoType;
  if (!['model', 'dataset', 'space'].includes(repoType)) throw invalidArg('--repo-type', 'one of model, dataset, space', f.repoType);
  const [localDir, cacheDir] = [dirFlag('--local-dir', f.localDir), dirFlag('--cache-dir', f.cacheDir)];
  if (f.token !== undefined && !f.token.trim()) throw invalidArg('--token', 'a Hub access token', f.token);
  const concurrency = intFlag('--concurrency', f.concurrency, 1, 64);
  const retries = intFlag('--retries', f.retries, 0, 20);
  const revision = f.revision === undefined ? undefined : checkRevision(f.revision, '--revision');
  if (cacheDir !== undefined && localDir !== undefined) {
    throw new ColdstartError('BAD_FLAG', '--cache-dir and --local-dir cannot be used together (as in `hf download`)', { hint: 'Use --cache-dir (or HF_HUB_CACHE) for the shared cache, or --local-dir for plain files in one folder.' });
  }
  const env = { ...ctx.env, ...(cacheDir !== undefined ? { HF_HUB_CACHE: resolve(ctx.cwd, cacheDir) } : {}), ...(f.token !== undefined ? { HF_TOKEN: f.token } : {}) };
  if (filenames.length && (f.include?.length || f.exclude?.length)) ctx.out.warn('ignoring --include/--exclude: file names were given (as `hf download` does)');
  const local = localDir !== undefined ? guardLocalDir(resolve(ctx.cwd, localDir), hubCacheDir(env)) : undefined;
  const files = { include: f.include, exclude: f.exclude, defaultExcludes: f.allFiles ? false : undefined, ...(filenames.length ? { filenames } : {}) };
  const download = { repo, repoType, revision, env, concurrency, retries, localDir: local, ...files, forceDownload: !!f.forceDownload, dryRun: !!f.dryRun };
  return { download, alias, toSafetensors: !!f.toSafetensors };
}

/** Human lines through the reporter (detail lines are left out by --quiet), or the one JSON document. */
function report(ctx: Context, doc: Record<string, unknown>, lines: Line[]): void {
  if (ctx.out.json) return ctx.out.writeJson(doc);
  for (const l of lines) (l.detail ? ctx.out.info(l.text) : ctx.out.print(l.text));
}

async function runDownload(ctx: Context, req: CacheRequest, budgets: BudgetFlags, engines: CacheEngines): Promise<number> {
  const label = cacheLabel(req.download.repo, req.alias);
  const bar = ctx.out.progress(label, 'resolving…');
  const onEvent = (e: DownloadEvent) => ((l) => ctx.out[l.level](l.text))(eventLine(e));
  let run: CacheRun;
  try {
    run = await cacheRepo(req, engines, { signal: ctx.signal, onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal), onEvent, warn: (m) => ctx.out.warn(m) });
  } catch (e) {
    if (e instanceof ColdstartError && e.code === 'INTERRUPTED' && !ctx.out.json) ctx.out.warn(interruptedNote(label, req.download.localDir !== undefined));
    throw e;
  } finally {
    bar.end();
  }
  const verdict = cacheVerdict(budgets, run);
  const code = verdictExitCode(verdict);
  report(ctx, { ...downloadDoc(run), budgets: verdict, exitCode: code }, downloadLines(run, ctx.out.style));
  tellVerdict(ctx.out, verdict);
  return code;
}

/**
 * Registers `coldstart cache` and its subcommands (ls, verify, rm) and returns the `cache` Command, so another
 * module can add a subcommand to it (e.g. `registerCacheArtifacts(registerCache(program, run), run)`).
 */
export function registerCache(program: Command, run: Runner, engines: CacheEngines = defaultCacheEngines): Command {
  const cache = program
    .command('cache')
    .description('pre-cache a model into the Hugging Face cache or a --local-dir so a cold start downloads nothing')
    .argument('<repo>', 'Hub repo id (org/name, or one segment like gpt2) or alias (llama3-8b…); or one of: ls, verify <repo>, rm <repo>')
    .argument('[filenames...]', 'only these files (like `hf download REPO FILENAMES`; `dir/` = everything under dir)')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--local-dir <dir>', 'write plain files into DIR (with .cache/huggingface bookkeeping) instead of the HF cache')
    .option('--include <glob...>', 'only files matching these globs (fnmatch, like allow_patterns)')
    .option('--exclude <glob...>', 'skip files matching these globs (like ignore_patterns)')
    .option('--all-files', 'also fetch .bin/.pt/.h5/… weights that duplicate safetensors (skipped by default)')
    .option('--concurrency <n>', 'files downloaded in parallel', '8')
    .option('--retries <n>', 'retries per request on transient errors (exponential backoff)', '5')
    .option('--to-safetensors', 'convert .bin-only repos to safetensors after the download')
    .option('--repo-type <type>', 'model, dataset or space (as huggingface_hub)', 'model')
    .option('--token <token>', 'Hub access token (overrides HF_TOKEN and the token file)')
    .option('--cache-dir <dir>', 'the Hugging Face cache to use (overrides HF_HUB_CACHE)')
    .option('--force-download', 'fetch again even when cached; the fresh verified blob replaces the old one')
    .option('--dry-run', 'print what would be fetched and its size; download and write nothing');
  addBudgetOptions(cache)
    .addHelpText('after', '\nEnvironment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HOME / HF_HUB_CACHE,\n  HF_HUB_OFFLINE=1 (report what is cached, download nothing).')
    .action(
      run(async (ctx, arg: string, filenames: string[], flags: CacheFlags) => {
        if (hfOffline(ctx.env)) ctx.out.info('HF_HUB_OFFLINE is set: reading the cache only');
        return runDownload(ctx, parseCache(ctx, arg, filenames ?? [], flags), budgetFlags(flags), engines);
      }),
    );
  cache
    .command('ls')
    .description('list cached repos: revisions, sizes, complete or not, partial downloads')
    .action(
      run(async (ctx) => {
        const l = listCache(hubCacheDir(ctx.env));
        report(ctx, lsDoc(l), lsLines(l, ctx.out.style));
        return ExitCode.OK;
      }),
    );
  // The parent `cache` command parses --revision/--local-dir/--concurrency wherever they appear (commander
  // options are not positional here), so the subcommands read them from the merged options.
  cache
    .command('verify')
    .description('re-hash cached files against the Hub hashes (sha256 / git sha1); exit 1 on mismatch. Takes --revision, --local-dir, --concurrency')
    .argument('<repo>', 'Hub repo id or alias')
    .action(
      run(async (ctx, arg: string, _o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals() as { revision?: string; localDir?: string; concurrency?: string };
        const { repo } = cacheRepoId(arg);
        const concurrency = intFlag('--concurrency', o.concurrency ?? '4', 1, 64);
        const localDir = dirFlag('--local-dir', o.localDir);
        const spin = await ctx.out.spinner(`verifying ${repo}…`);
        const revision = o.revision === undefined ? undefined : checkRevision(o.revision, '--revision');
        const v = await verifyRepo({ repo, revision, localDir: localDir === undefined ? undefined : resolve(ctx.cwd, localDir), cacheDir: hubCacheDir(ctx.env), concurrency, signal: ctx.signal });
        spin.stop();
        report(ctx, verifyDoc(v), verifyLines(v, ctx.out.style));
        return v.ok ? ExitCode.OK : ExitCode.BUDGET;
      }),
    );
  cache
    .command('rm')
    .description('remove a cached repo (all its revisions and partial downloads)')
    .argument('<repo>', 'Hub repo id or alias')
    .action(
      run(async (ctx, arg: string) => {
        const r = removeRepo(hubCacheDir(ctx.env), cacheRepoId(arg).repo, ctx.env);
        report(ctx, rmDoc(r), rmLines(r));
        return ExitCode.OK;
      }),
    );
  return cache;
}

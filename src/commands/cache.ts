import type { Command } from 'commander';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { intFlag } from '../core/flags.js';
import { nowSeconds } from '../core/clock.js';
import type { Context, Runner } from '../cli/context.js';
import { ColdstartError, ExitCode, invalidArg } from '../core/errors.js';
import { trackTemp, removeTemp } from '../core/atomic.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import { publicPhase, runPhase } from '../core/phases.js';
import { hubCacheDir, hfEndpoint, hfOffline } from '../hub/env.js';
import type { RepoType } from '../hub/api.js';
import { resolveRepoId } from '../models/table.js';
import { scanHubCacheRepos, scanRepo } from '../cache/scan.js';
import { downloadRepo, recordDownloadPhase, validateRepoId, type DownloadEvent, type DownloadResult } from '../cache/download.js';
import { repoFolderName } from '../cache/layout.js';
import { verifyCached, verifyLocalDir } from '../cache/verify.js';
import { convertCheckpoint } from '../convert/convert.js';
import { breakLock, inspectLock, staleSeconds, type LockState } from '../cache/lock.js';
import { selectWeightNames } from '../formats/weights.js';

const SCHEMA = 'coldstart/cache@1';

/** The engines `cache` drives, passed in so tests can swap them: the Hub download and the .bin converter. */
export interface CacheEngines {
  downloadRepo: typeof downloadRepo;
  convertCheckpoint: typeof convertCheckpoint;
}
export const defaultCacheEngines: CacheEngines = { downloadRepo, convertCheckpoint };

interface CacheFlags {
  revision?: string;
  localDir?: string;
  include?: string[];
  exclude?: string[];
  allFiles?: boolean;
  concurrency: string;
  retries: string;
  toSafetensors?: boolean;
  repoType?: string;
  token?: string;
  cacheDir?: string;
  forceDownload?: boolean;
  dryRun?: boolean;
}

function repoArg(arg: string): { repo: string; alias?: string } {
  const r = resolveRepoId(arg) ?? (/^[\w.-]+$/.test(arg) && !/^[.-]|[.-]$|\.\./.test(arg) ? { repo: arg } : undefined); // gpt2: a one-segment repo id
  if (!r) throw new ColdstartError('UNKNOWN_MODEL', `unknown model ${JSON.stringify(arg)}: not an alias and not an org/name repo id`, { hint: 'Use a Hub repo id such as meta-llama/Meta-Llama-3-8B, or an alias such as llama3-8b.' });
  return r;
}

/** Progress: a redrawn line (spinner) on a TTY, plain lines every 5 s otherwise; rate over the last ~3 s. */
async function progress(ctx: Context, label: string) {
  // Output.interactive is false on a pty that reports 0 columns (ora would redraw forever there).
  const redraw = ctx.out.interactive;
  const spin = redraw ? await ctx.out.spinner(`${label}: resolving…`) : { update() {}, stop() {}, succeed() {}, fail() {} };
  const samples: Array<[number, number]> = [];
  let lastLine = -1; // none printed yet
  let files = 0;
  const t0 = nowSeconds() * 1000;
  return {
    spin,
    fileDone() {
      files++;
    },
    update(p: { bytesDone: number; bytesTotal: number }) {
      const t = nowSeconds() * 1000;
      samples.push([t, p.bytesDone]);
      while (samples.length > 2 && t - samples[0][0] > 3000) samples.shift();
      const [t1, b1] = samples[0];
      const rate = t > t1 ? ((p.bytesDone - b1) / (t - t1)) * 1000 : 0;
      const left = p.bytesTotal - p.bytesDone;
      const eta = rate > 0 ? formatDuration(left / rate) : '—';
      const pct = p.bytesTotal ? Math.floor((p.bytesDone / p.bytesTotal) * 100) : 100;
      const text = `${label}: ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} (${pct}%) · ${formatRate(rate)} · ETA ${eta}`;
      if (redraw) spin.update(text);
      else if (lastLine >= 0 ? t - lastLine >= 5000 : t - t0 > 1000) {
        lastLine = t;
        ctx.out.progressLine(text);
      }
    },
    event(e: DownloadEvent) {
      if (e.type === 'retry') ctx.out.warn(`${e.file}: ${e.reason}; retry ${e.attempt} in ${formatDuration(e.waitSeconds)}`);
      else if (e.type === 'resume') ctx.out.progressLine(`${e.file}: resuming at ${formatBytes(e.fromByte)} (HTTP Range)`);
      else if (e.type === 'waiting-lock') ctx.out.progressLine(`${e.file}: another process is downloading it; waiting for its lock`);
      else if (e.type === 'rejected') ctx.out.warn(`${e.file}: ${e.reason}; bytes discarded`);
    },
  };
}

async function convertIfAsked(ctx: Context, flags: CacheFlags, r: DownloadResult, convert: CacheEngines['convertCheckpoint']): Promise<{ converted: boolean; reason: string } | undefined> {
  // The weights a load would read (formats/weights.ts): pickles only when no safetensors are beside them.
  const binOnly = selectWeightNames(r.files.map((f) => f.path).filter((p) => !p.includes('/'))).format === 'bin';
  if (!flags.toSafetensors) {
    if (binOnly) ctx.out.info(`note: ${r.repo} has only pickle (.bin) weights; --to-safetensors (or \`coldstart convert\`) cuts gpu-load and never runs pickle code`);
    return undefined;
  }
  if (!binOnly) return { converted: false, reason: 'the repo already has safetensors weights (or no .bin weights)' };
  // The converter refuses to write into its input, so it writes a drop-in directory beside the snapshot (same
  // filesystem) and only the new weight files (shards + index) are renamed into the snapshot; the rest is dropped.
  const staging = join(r.snapshotDir, '..', `.${r.commit}.coldstart-convert-${process.pid}`);
  trackTemp(staging);
  try {
    // The snapshot's symlinked .bin files are read through the links.
    await convert({
      input: r.snapshotDir,
      output: staging,
      verify: true,
      signal: ctx.signal,
      warn: (m) => ctx.out.warn(m),
    });
    const made = readdirSync(staging).filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json');
    // Shards first, the index last: a reader that sees the index finds every shard it names.
    made.sort((a, b) => Number(a.endsWith('.json')) - Number(b.endsWith('.json')));
    for (const f of made) renameSync(join(staging, f), join(r.snapshotDir, f));
  } finally {
    removeTemp(staging);
  }
  return { converted: true, reason: 'converted .bin weights to safetensors in place' };
}

/** `hf download` flags that change where and as whom: --cache-dir and --token override HF_HUB_CACHE / HF_TOKEN. */
/** A folder flag that was given must name a folder: `--local-dir ''` is refused, never read as "not given". */
function dirFlag(flag: string, v: string | undefined): string | undefined {
  if (v !== undefined && !v.trim()) throw invalidArg(flag, 'a folder path', v, `Pass a folder, e.g. ${flag} ./models/llama, or leave ${flag} out.`);
  return v;
}

function hfEnv(ctx: Context, flags: CacheFlags): Record<string, string | undefined> {
  dirFlag('--local-dir', flags.localDir);
  dirFlag('--cache-dir', flags.cacheDir);
  if (flags.cacheDir !== undefined && flags.localDir !== undefined) {
    throw new ColdstartError('BAD_FLAG', '--cache-dir and --local-dir cannot be used together (as in `hf download`)', { hint: 'Use --cache-dir (or HF_HUB_CACHE) for the shared cache, or --local-dir for plain files in one folder.' });
  }
  if (flags.token !== undefined && !flags.token.trim()) throw invalidArg('--token', 'a Hub access token', flags.token);
  return {
    ...ctx.env,
    ...(flags.cacheDir !== undefined ? { HF_HUB_CACHE: resolve(ctx.cwd, flags.cacheDir) } : {}),
    ...(flags.token !== undefined ? { HF_TOKEN: flags.token } : {}),
  };
}

function repoTypeFlag(v: string | undefined): RepoType {
  const t = v ?? 'model';
  if (t !== 'model' && t !== 'dataset' && t !== 'space') throw invalidArg('--repo-type', 'one of model, dataset, space', v);
  return t;
}

async function runDownload(ctx: Context, arg: string, filenames: string[], flags: CacheFlags, engines: CacheEngines): Promise<number> {
  const { repo, alias } = repoArg(arg);
  const repoType = repoTypeFlag(flags.repoType);
  const env = hfEnv(ctx, flags);
  if (filenames.length && (flags.include?.length || flags.exclude?.length)) ctx.out.warn('ignoring --include/--exclude: file names were given (as `hf download` does)');
  const concurrency = intFlag('--concurrency', flags.concurrency, 1, 64);
  const retries = intFlag('--retries', flags.retries, 0, 20);
  const label = alias ? `${alias} (${repo})` : repo;
  const prog = await progress(ctx, label);
  let result: DownloadResult | undefined;
  const phase = await runPhase('download', async (h) => {
    result = await engines.downloadRepo({
      repo,
      revision: flags.revision,
      include: flags.include,
      exclude: flags.exclude,
      defaultExcludes: flags.allFiles ? false : undefined,
      localDir: flags.localDir !== undefined ? resolve(ctx.cwd, flags.localDir) : undefined,
      concurrency,
      retries,
      env,
      repoType,
      ...(filenames.length ? { filenames } : {}),
      forceDownload: !!flags.forceDownload,
      dryRun: !!flags.dryRun,
      signal: ctx.signal,
      onProgress: (p) => prog.update(p),
      onEvent: (e) => prog.event(e),
    });
    recordDownloadPhase(h, result);
  });
  prog.spin.stop();
  if (phase.status === 'failed' || !result) {
    const cause = phase.cause ?? new ColdstartError('INTERNAL', 'download failed');
    if (cause instanceof ColdstartError && cause.code === 'INTERRUPTED' && !ctx.out.json)
      ctx.out.warn(`${label}: interrupted; partial downloads are kept for resume (${flags.localDir !== undefined ? '.cache/huggingface/download/*.incomplete in the --local-dir' : 'blobs/*.incomplete in the cache'}) and the same command continues them`);
    throw cause;
  }
  const r = result;
  if (r.dryRun) return printDryRun(ctx, r, r.dryRun, alias);
  const conversion = await convertIfAsked(ctx, flags, r, engines.convertCheckpoint);
  if (ctx.out.json) {
    ctx.out.writeJson({
      schema: SCHEMA,
      action: 'download',
      repo: r.repo,
      alias: alias ?? null,
      revision: r.revision,
      commit: r.commit,
      mode: r.mode,
      endpoint: hfEndpoint(env),
      repoType,
      cacheDir: r.cacheDir,
      snapshotDir: r.snapshotDir,
      offline: r.offline ?? false,
      fromCache: r.fromCache,
      bytesTotal: r.bytesTotal,
      bytesDownloaded: r.bytesDownloaded,
      bytesWire: r.bytesWire ?? r.bytesDownloaded,
      bytesResumed: r.bytesResumed ?? 0,
      bytesRefetched: r.bytesRefetched ?? 0,
      seconds: r.seconds,
      bytesPerSecond: r.bytesPerSecond,
      concurrency,
      files: r.files,
      excluded: r.excluded ?? [],
      defaultExcludes: r.defaultExcludes ?? null,
      resumed: r.resumed ?? [],
      conversion: conversion ?? null,
      phase: publicPhase(phase),
    });
    return ExitCode.OK;
  }
  const s = ctx.out.style;
  const cachedN = r.files.filter((f) => f.cached).length;
  ctx.out.print(`${s.green('cached')} ${label} @ ${r.revision} (commit ${r.commit.slice(0, 12)}) → ${r.snapshotDir}`);
  if (r.offline) ctx.out.print(`  HF_HUB_OFFLINE: nothing downloaded; ${r.files.length} file(s), ${formatBytes(r.bytesTotal)} found in the cache`);
  else if (r.bytesDownloaded === 0) ctx.out.print(`  ${r.files.length} file(s), ${formatBytes(r.bytesTotal)}: all already cached, nothing downloaded (${formatDuration(r.seconds)})`);
  else
    ctx.out.print(
      `  ${r.files.length} file(s), ${formatBytes(r.bytesTotal)}: downloaded ${formatBytes(r.bytesDownloaded)} in ${formatDuration(r.seconds)} (${formatRate(r.bytesPerSecond)}, ${concurrency} parallel)${cachedN ? `; ${cachedN} already cached` : ''}`,
    );
  for (const x of r.resumed ?? []) ctx.out.info(`  resumed ${x.path} from ${formatBytes(x.fromByte)}`);
  if (r.bytesResumed || r.bytesRefetched)
    ctx.out.info(`  bytes: ${formatBytes(r.bytesWire ?? r.bytesDownloaded)} over the network, ${formatBytes(r.bytesResumed ?? 0)} kept from partial downloads${r.bytesRefetched ? `, ${formatBytes(r.bytesRefetched)} fetched twice (the server refused to resume)` : ''}`);
  if (r.defaultExcludes && r.excluded?.length) {
    const bytes = r.excluded.reduce((a, f) => a + f.bytes, 0);
    ctx.out.info(`  skipped ${r.excluded.length} file(s), ${formatBytes(bytes)}: duplicate weight formats (${r.defaultExcludes.join(' ')}) next to safetensors; --all-files fetches them`);
  } else if (r.excluded?.length) ctx.out.info(`  ${r.excluded.length} file(s) left out by --include/--exclude`);
  if (conversion) ctx.out.info(`  --to-safetensors: ${conversion.reason}`);
  if (!ctx.global.quiet) {
    const w = Math.max(...r.files.map((f) => f.path.length));
    for (const f of r.files) ctx.out.info(`    ${f.path.padEnd(w)}  ${formatBytes(f.bytes).padStart(10)}  ${f.cached ? s.dim('cached') : formatDuration(f.seconds)}`);
  }
  return ExitCode.OK;
}

/** `--dry-run`: what `hf download --dry-run` prints — how many files would be fetched, their size, a table. */
function printDryRun(ctx: Context, r: DownloadResult, plan: NonNullable<DownloadResult['dryRun']>, alias: string | undefined): number {
  const will = plan.filter((f) => f.willDownload);
  const bytes = will.reduce((a, f) => a + f.bytes, 0);
  if (ctx.out.json) {
    ctx.out.writeJson({ schema: SCHEMA, action: 'dry-run', repo: r.repo, alias: alias ?? null, revision: r.revision, commit: r.commit, mode: r.mode, cacheDir: r.cacheDir, snapshotDir: r.snapshotDir, filesToDownload: will.length, bytesToDownload: bytes, bytesTotal: r.bytesTotal, files: plan, excluded: r.excluded ?? [] });
    return ExitCode.OK;
  }
  ctx.out.print(`[dry-run] Will download ${will.length} files (out of ${plan.length}) totalling ${formatBytes(bytes)}.`);
  const w = Math.max(4, ...plan.map((f) => f.path.length));
  ctx.out.print(`  ${'file'.padEnd(w)}  size`);
  for (const f of plan) ctx.out.print(`  ${f.path.padEnd(w)}  ${f.willDownload ? formatBytes(f.bytes) : '-'}`);
  return ExitCode.OK;
}

function runLs(ctx: Context): number {
  const dir = hubCacheDir(ctx.env);
  const repos = scanHubCacheRepos(dir);
  if (ctx.out.json) {
    ctx.out.writeJson({ schema: SCHEMA, action: 'ls', cacheDir: dir, exists: existsSync(dir), sizeBytes: repos.reduce((a, r) => a + r.sizeBytes, 0), repos });
    return ExitCode.OK;
  }
  if (!repos.length) {
    ctx.out.print(`no cached repos in ${dir}${existsSync(dir) ? '' : ' (does not exist yet)'}`);
    return ExitCode.OK;
  }
  const s = ctx.out.style;
  ctx.out.print(s.bold(`${dir}: ${repos.length} repo(s), ${formatBytes(repos.reduce((a, r) => a + r.sizeBytes, 0))}`));
  for (const r of repos) {
    const part = r.incomplete.length ? s.yellow(`, ${r.incomplete.length} partial download(s) ${formatBytes(r.incomplete.reduce((a, b) => a + b.bytes, 0))} (resumable)`) : '';
    ctx.out.print(`${s.cyan(r.repo)}  ${formatBytes(r.sizeBytes)}${part}`);
    for (const sn of r.snapshots) {
      const state = sn.broken.length
        ? s.red(`broken: ${sn.broken.length} file(s) without blob`)
        : sn.missing === null
          ? 'complete? (no tree listing cached)'
          : sn.missing.length
            ? s.yellow(`${sn.missing.length} file(s) of the commit not cached`)
            : s.green('complete');
      ctx.out.print(`  ${sn.commit.slice(0, 12)} ${sn.refs.length ? `(${sn.refs.join(', ')}) ` : ''}${sn.files} file(s), ${formatBytes(sn.bytes)}: ${state}`);
    }
  }
  return ExitCode.OK;
}

async function runVerify(ctx: Context, arg: string, flags: { revision?: string; localDir?: string; concurrency: string }): Promise<number> {
  const { repo } = repoArg(arg);
  const concurrency = intFlag('--concurrency', flags.concurrency, 1, 64);
  const localDir = dirFlag('--local-dir', flags.localDir);
  const spin = await ctx.out.spinner(`verifying ${repo}…`);
  const v = localDir !== undefined
    ? await verifyLocalDir(resolve(ctx.cwd, localDir), repo, { concurrency, signal: ctx.signal })
    : await verifyCached(hubCacheDir(ctx.env), repo, flags.revision, { concurrency, signal: ctx.signal });
  spin.stop();
  const bad = v.files.filter((f) => f.status === 'mismatch' || f.status === 'missing-blob');
  if (ctx.out.json) ctx.out.writeJson({ schema: SCHEMA, action: 'verify', ...v });
  else {
    const s = ctx.out.style;
    for (const f of v.files) {
      const mark = f.status === 'ok' ? s.green('ok') : f.status === 'unverifiable' ? s.yellow('unverifiable (no hash known)') : s.red(f.status === 'mismatch' ? `MISMATCH: ${f.algorithm} ${f.got}, expected ${f.expected}` : 'MISSING BLOB');
      ctx.out.info(`  ${f.path}  ${formatBytes(f.bytes)}  ${mark}`);
    }
    if (v.notFetched.length) ctx.out.info(`  ${v.notFetched.length} file(s) of the commit were never fetched (filtered out): ${v.notFetched.slice(0, 5).join(', ')}${v.notFetched.length > 5 ? ', …' : ''}`);
    ctx.out.print(
      v.ok
        ? `${s.green('verified')} ${repo} @ ${v.commit.slice(0, 12)}: ${v.files.length} file(s), ${formatBytes(v.bytes)} re-hashed in ${formatDuration(v.seconds)}, all match`
        : `${s.red('MISMATCH')} ${repo} @ ${v.commit.slice(0, 12)}: ${bad.length} of ${v.files.length} file(s) do not match the Hub's hashes (${bad.map((f) => f.path).join(', ')})`,
    );
  }
  if (!v.ok) {
    if (!ctx.out.json) ctx.out.info(`  Fix: \`coldstart cache rm ${repo}\` then \`coldstart cache ${repo}\` to fetch clean copies.`);
    return ExitCode.BUDGET;
  }
  return ExitCode.OK;
}

/** The coldstart locks in a repo's lock folder, each with what its owner looks like now (lock.ts inspectLock). */
function repoLocks(lockDir: string): Array<{ path: string; state: LockState }> {
  let names: string[];
  try {
    names = readdirSync(lockDir).filter((n) => n.endsWith('.coldstart.lock'));
  } catch {
    return [];
  }
  return names.map((n) => ({ path: join(lockDir, n), state: inspectLock(join(lockDir, n)) }));
}

function runRm(ctx: Context, arg: string): number {
  const { repo } = repoArg(arg);
  validateRepoId(repo);
  const dir = hubCacheDir(ctx.env);
  const folder = repoFolderName(repo);
  const scan = scanRepo(dir, folder);
  if (!scan || !existsSync(scan.dir)) throw new ColdstartError('NOT_FOUND', `${repo} is not in the cache at ${dir}`, { hint: 'Run `coldstart cache ls` to see what is cached.' });
  const lockDir = join(dir, '.locks', folder);
  const locks = repoLocks(lockDir);
  const live = locks.filter((l) => l.state.state === 'live');
  if (live.length) {
    const why = live[0].state.state === 'live' ? live[0].state.why : '';
    throw new ColdstartError('AMBIGUOUS', `${repo}: a running coldstart download holds ${live.length} lock(s) on it (${why}); not removing it under a running download`, {
      hint: `Wait for it to finish or stop it. A lock is stale once its heartbeat is older than ${staleSeconds(ctx.env)} s (COLDSTART_LOCK_STALE_SECONDS), whatever host wrote it; \`cache rm\` then removes it.`,
    });
  }
  for (const l of locks) {
    if (l.state.state !== 'stale') continue;
    ctx.out.info(`removing a stale lock: ${l.state.owner ? `pid ${l.state.owner.pid} on ${l.state.owner.host}` : 'unknown owner'}, ${l.state.why}`);
    breakLock(l.path);
  }
  const freed = scan.sizeBytes + scan.incomplete.reduce((a, b) => a + b.bytes, 0);
  // Rename first so a half-finished removal never looks like a usable (but incomplete) snapshot.
  const doomed = join(dir, `.${folder}.coldstart-rm-${process.pid}`);
  renameSync(scan.dir, doomed);
  rmSync(doomed, { recursive: true, force: true });
  rmSync(lockDir, { recursive: true, force: true });
  if (ctx.out.json) ctx.out.writeJson({ schema: SCHEMA, action: 'rm', repo, cacheDir: dir, removed: scan.dir, bytesFreed: freed, snapshots: scan.snapshots.map((s) => s.commit) });
  else ctx.out.print(`removed ${repo}: ${scan.snapshots.length} snapshot(s), ${formatBytes(freed)} freed (${scan.dir})`);
  return ExitCode.OK;
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
    .option('--dry-run', 'print what would be fetched and its size; download and write nothing')
    .addHelpText('after', '\nEnvironment: HF_ENDPOINT, HF_TOKEN (or $HF_HOME/token), HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE=1 (report what is cached, download nothing).')
    .action(
      run(async (ctx, arg: string, filenames: string[], flags: CacheFlags) => {
        if (hfOffline(ctx.env)) ctx.out.info('HF_HUB_OFFLINE is set: reading the cache only');
        return runDownload(ctx, arg, filenames ?? [], flags, engines);
      }),
    );
  cache
    .command('ls')
    .description('list cached repos: revisions, sizes, complete or not, partial downloads')
    .action(run(async (ctx) => runLs(ctx)));
  // The parent `cache` command parses --revision/--local-dir/--concurrency wherever they appear (commander
  // options are not positional here), so the subcommands read them from the merged options.
  cache
    .command('verify')
    .description('re-hash cached files against the Hub hashes (sha256 / git sha1); exit 1 on mismatch. Takes --revision, --local-dir, --concurrency')
    .argument('<repo>', 'Hub repo id or alias')
    .action(
      run(async (ctx, arg: string, _o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals() as { revision?: string; localDir?: string; concurrency?: string };
        return runVerify(ctx, arg, { revision: o.revision, localDir: o.localDir, concurrency: o.concurrency ?? '4' });
      }),
    );
  cache
    .command('rm')
    .description('remove a cached repo (all its revisions and partial downloads)')
    .argument('<repo>', 'Hub repo id or alias')
    .action(run(async (ctx, arg: string) => runRm(ctx, arg)));
  return cache;
}

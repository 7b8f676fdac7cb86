/** What `coldstart cache` shows: each subcommand's JSON document (coldstart/cache@1) and its human lines. */
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import type { Style } from '../core/output.js';
import { measurementOf, publicPhase } from '../core/phases.js';
import { judgeBudgets, type BudgetFlags } from '../core/emit.js';
import type { BudgetResult } from '../core/budgets.js';
import { hfEndpoint } from '../hub/env.js';
import type { RemoveResult } from './remove.js';
import type { CacheRun } from './run.js';
import type { listCache } from './scan.js';
import type { DownloadEvent } from './types.js';
import type { VerifyResult } from './verify.js';

export const CACHE_SCHEMA = 'coldstart/cache@1';

/** A human line: `detail` lines are left out by --quiet (Output.info), the others always shown (Output.print). */
export interface Line {
  text: string;
  detail?: boolean;
}
const main = (text: string): Line => ({ text });
const detail = (text: string): Line => ({ text, detail: true });

/** How a repo is named in messages: `alias (org/name)` or the repo id. */
export function cacheLabel(repo: string, alias?: string): string {
  return alias ? `${alias} (${repo})` : repo;
}

/** A download event as a line on stderr: a warning (Output.warn) or a progress note (Output.progressLine). */
export function eventLine(e: DownloadEvent): { level: 'warn' | 'progressLine'; text: string } {
  if (e.type === 'retry') return { level: 'warn', text: `${e.file}: ${e.reason}; retry ${e.attempt} in ${formatDuration(e.waitSeconds)}` };
  if (e.type === 'rejected') return { level: 'warn', text: `${e.file}: ${e.reason}; bytes discarded` };
  if (e.type === 'resume') return { level: 'progressLine', text: `${e.file}: resuming at ${formatBytes(e.fromByte)} (HTTP Range)` };
  return { level: 'progressLine', text: `${e.file}: another process is downloading it; waiting for its lock` };
}

/** Said when a download is interrupted: where its partial files wait for the same command. */
export function interruptedNote(label: string, localDir: boolean): string {
  return `${label}: interrupted; partial downloads are kept for resume (${localDir ? '.cache/huggingface/download/*.incomplete in the --local-dir' : 'blobs/*.incomplete in the cache'}) and the same command continues them`;
}

/**
 * cache's budgets: `download` is the download phase (measured, 0 s included when everything was cached) and `total`
 * the whole run, the download plus the --to-safetensors conversion when one ran. `--dry-run` measures nothing: a
 * budget on it fails closed like any budget on what was not measured.
 */
export function cacheVerdict(budgets: BudgetFlags, run: CacheRun): BudgetResult[] {
  if (run.result.dryRun) return judgeBudgets(budgets, { download: { state: 'left-out', reason: '--dry-run downloads nothing' }, total: { state: 'not-measured', reason: '--dry-run downloads nothing' } });
  const download = measurementOf(run.phase);
  return judgeBudgets(budgets, { download, total: download.state === 'measured' ? { state: 'measured', seconds: download.seconds + (run.conversionSeconds ?? 0) } : download });
}

export function downloadDoc(run: CacheRun): Record<string, unknown> {
  const r = run.result;
  const d = run.request.download;
  const head = { schema: CACHE_SCHEMA, action: r.dryRun ? 'dry-run' : 'download', repo: r.repo, alias: run.request.alias ?? null, revision: r.revision, commit: r.commit, mode: r.mode };
  if (r.dryRun) {
    const will = r.dryRun.filter((f) => f.willDownload);
    const bytesToDownload = will.reduce((a, f) => a + f.bytes, 0);
    return { ...head, cacheDir: r.cacheDir, snapshotDir: r.snapshotDir, filesToDownload: will.length, bytesToDownload, bytesTotal: r.bytesTotal, files: r.dryRun, excluded: r.excluded ?? [] };
  }
  return {
    ...head,
    endpoint: hfEndpoint(d.env),
    repoType: d.repoType ?? 'model',
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
    concurrency: d.concurrency,
    files: r.files,
    excluded: r.excluded ?? [],
    defaultExcludes: r.defaultExcludes ?? null,
    resumed: r.resumed ?? [],
    conversion: run.conversion ?? null,
    phase: publicPhase(run.phase),
  };
}

export function downloadLines(run: CacheRun, s: Style): Line[] {
  const r = run.result;
  if (r.dryRun) return dryRunLines(run);
  const out: Line[] = [];
  if (run.pickleOnly && !run.request.toSafetensors) out.push(detail(`note: ${r.repo} has only pickle (.bin) weights; --to-safetensors (or \`coldstart convert\`) cuts gpu-load and never runs pickle code`));
  const cachedN = r.files.filter((f) => f.cached).length;
  out.push(main(`${s.green('cached')} ${cacheLabel(r.repo, run.request.alias)} @ ${r.revision} (commit ${r.commit.slice(0, 12)}) → ${r.snapshotDir}`));
  if (r.offline) out.push(main(`  HF_HUB_OFFLINE: nothing downloaded; ${r.files.length} file(s), ${formatBytes(r.bytesTotal)} found in the cache`));
  else if (r.bytesDownloaded === 0) out.push(main(`  ${r.files.length} file(s), ${formatBytes(r.bytesTotal)}: all already cached, nothing downloaded (${formatDuration(r.seconds)})`));
  else out.push(main(`  ${r.files.length} file(s), ${formatBytes(r.bytesTotal)}: downloaded ${formatBytes(r.bytesDownloaded)} in ${formatDuration(r.seconds)} (${formatRate(r.bytesPerSecond)}, ${run.request.download.concurrency} parallel)${cachedN ? `; ${cachedN} already cached` : ''}`));
  for (const x of r.resumed ?? []) out.push(detail(`  resumed ${x.path} from ${formatBytes(x.fromByte)}`));
  if (r.bytesResumed || r.bytesRefetched) {
    const twice = r.bytesRefetched ? `, ${formatBytes(r.bytesRefetched)} fetched twice (the server refused to resume)` : '';
    out.push(detail(`  bytes: ${formatBytes(r.bytesWire ?? r.bytesDownloaded)} over the network, ${formatBytes(r.bytesResumed ?? 0)} kept from partial downloads${twice}`));
  }
  if (r.defaultExcludes && r.excluded?.length) {
    const bytes = r.excluded.reduce((a, f) => a + f.bytes, 0);
    out.push(detail(`  skipped ${r.excluded.length} file(s), ${formatBytes(bytes)}: duplicate weight formats (${r.defaultExcludes.join(' ')}) next to safetensors; --all-files fetches them`));
  } else if (r.excluded?.length) out.push(detail(`  ${r.excluded.length} file(s) left out by --include/--exclude`));
  if (run.conversion) out.push(detail(`  --to-safetensors: ${run.conversion.reason}`));
  const w = Math.max(...r.files.map((f) => f.path.length));
  for (const f of r.files) out.push(detail(`    ${f.path.padEnd(w)}  ${formatBytes(f.bytes).padStart(10)}  ${f.cached ? s.dim('cached') : formatDuration(f.seconds)}`));
  return out;
}

/** `--dry-run`: what `hf download --dry-run` prints — how many files would be fetched, their size, a table. */
function dryRunLines(run: CacheRun): Line[] {
  const plan = run.result.dryRun ?? [];
  const will = plan.filter((f) => f.willDownload);
  const w = Math.max(4, ...plan.map((f) => f.path.length));
  return [
    main(`[dry-run] Will download ${will.length} files (out of ${plan.length}) totalling ${formatBytes(will.reduce((a, f) => a + f.bytes, 0))}.`),
    main(`  ${'file'.padEnd(w)}  size`),
    ...plan.map((f) => main(`  ${f.path.padEnd(w)}  ${f.willDownload ? formatBytes(f.bytes) : '-'}`)),
  ];
}

type Listing = ReturnType<typeof listCache>;

export function lsDoc(l: Listing): Record<string, unknown> {
  return { schema: CACHE_SCHEMA, action: 'ls', ...l };
}

export function lsLines(l: Listing, s: Style): Line[] {
  if (!l.repos.length) return [main(`no cached repos in ${l.cacheDir}${l.exists ? '' : ' (does not exist yet)'}`)];
  const out = [main(s.bold(`${l.cacheDir}: ${l.repos.length} repo(s), ${formatBytes(l.sizeBytes)}`))];
  for (const r of l.repos) {
    const part = r.incomplete.length ? s.yellow(`, ${r.incomplete.length} partial download(s) ${formatBytes(r.incomplete.reduce((a, b) => a + b.bytes, 0))} (resumable)`) : '';
    out.push(main(`${s.cyan(r.repo)}  ${formatBytes(r.sizeBytes)}${part}`));
    for (const sn of r.snapshots) {
      const state = sn.broken.length
        ? s.red(`broken: ${sn.broken.length} file(s) without blob`)
        : sn.missing === null
          ? 'complete? (no tree listing cached)'
          : sn.missing.length
            ? s.yellow(`${sn.missing.length} file(s) of the commit not cached`)
            : s.green('complete');
      const skipped = sn.skipped.length ? `; ${sn.skipped.length} skipped (duplicate weight formats next to safetensors; --all-files fetches them)` : '';
      out.push(main(`  ${sn.commit.slice(0, 12)} ${sn.refs.length ? `(${sn.refs.join(', ')}) ` : ''}${sn.files} file(s), ${formatBytes(sn.bytes)}: ${state}${skipped}`));
    }
  }
  return out;
}

export function verifyDoc(v: VerifyResult): Record<string, unknown> {
  return { schema: CACHE_SCHEMA, action: 'verify', ...v };
}

export function verifyLines(v: VerifyResult, s: Style): Line[] {
  const out: Line[] = [];
  for (const f of v.files) {
    const bad = f.status === 'mismatch' ? `MISMATCH: ${f.algorithm} ${f.got}, expected ${f.expected}` : 'MISSING BLOB';
    const mark = f.status === 'ok' ? s.green('ok') : f.status === 'unverifiable' ? s.yellow('unverifiable (no hash known)') : s.red(bad);
    out.push(detail(`  ${f.path}  ${formatBytes(f.bytes)}  ${mark}`));
  }
  if (v.notFetched.length) out.push(detail(`  ${v.notFetched.length} file(s) of the commit were never fetched (filtered out): ${v.notFetched.slice(0, 5).join(', ')}${v.notFetched.length > 5 ? ', …' : ''}`));
  if (v.ok) {
    out.push(main(`${s.green('verified')} ${v.repo} @ ${v.commit.slice(0, 12)}: ${v.files.length} file(s), ${formatBytes(v.bytes)} re-hashed in ${formatDuration(v.seconds)}, all match`));
    return out;
  }
  const bad = v.files.filter((f) => f.status === 'mismatch' || f.status === 'missing-blob');
  out.push(main(`${s.red('MISMATCH')} ${v.repo} @ ${v.commit.slice(0, 12)}: ${bad.length} of ${v.files.length} file(s) do not match the Hub's hashes (${bad.map((f) => f.path).join(', ')})`));
  out.push(detail(`  Fix: \`coldstart cache rm ${v.repo}\` then \`coldstart cache ${v.repo}\` to fetch clean copies.`));
  return out;
}

export function rmDoc(r: RemoveResult): Record<string, unknown> {
  return { schema: CACHE_SCHEMA, action: 'rm', repo: r.repo, cacheDir: r.cacheDir, removed: r.removed, bytesFreed: r.bytesFreed, snapshots: r.snapshots };
}

export function rmLines(r: RemoveResult): Line[] {
  return [
    ...r.staleLocks.map((l) => detail(`removing a stale lock: ${l.owner ? `pid ${l.owner.pid} on ${l.owner.host}` : 'unknown owner'}, ${l.why}`)),
    main(`removed ${r.repo}: ${r.snapshots.length} snapshot(s), ${formatBytes(r.bytesFreed)} freed (${r.removed})`),
  ];
}

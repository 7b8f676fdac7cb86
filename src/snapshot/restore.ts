/**
 * `restore`: refuse, before touching anything, an image from another machine, a damaged image, pids or ports in
 * use, too little memory; otherwise CRIU-restore the tree, restore and unlock each GPU process, wait until ready
 * (the restored tree adopted by the one server lifecycle), repeat the first request and report restored vs cold.
 * All or nothing: a tree restored but not brought back is stopped whole.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ColdstartError, ExitCode, isColdstartError } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import { newReport } from '../core/report.js';
import type { PrefetchResult } from '../load/prefetch.js';
import { answerDigests, sameAnswer } from '../server/answer.js';
import { compareAnswers } from '../server/compare.js';
import { MAX_BODY } from '../server/http.js';
import { sendRecorded, type RecordedRequest } from '../server/api.js';
import type { ServerHandle } from '../server/lifecycle.js';
import { hugePagesBack, hugePagesDetail, hugePagesOn, type HugePagesWindow } from '../platform/thp.js';
import { stopwatch, type SnapshotEngines } from './engines.js';
import { putLogBack, serverLogPath } from './image.js';
import { ANSWER_COPY, LOG_COPY, afterRestoreRequests, fingerprintDiff, imageFile, keepRestoredWorkingSet, lstatOrNull, readManifestAndDigest, restoredWorkingSetPath, verifyImage, isPageData, workingSetToRead, type ImageProblem, type Manifest } from './manifest.js';
import { sendHooks } from './snapshot.js';
import { refuseWhereCriuWouldBe, restorePermissionFixes } from './doctor.js';
import { fmt, phase, table, type Reported } from './report.js';
import { machineFingerprint, STOP_GRACE_SECONDS } from './snapshot.js';
import { movesText, planGpus, usedBytesSum } from './gpu-map.js';
import { measureRestoreFloor, partFloor, restoreFloorLines, type From, type RestoreFloor } from './floor.js';
import { fileIdentity, listStage, planStage, stageDir, stageLine, unlistStage, type FileIdentity, type StageDetail } from './stage.js';
import type { StagedLoad } from './native.js';
import { filesBytes } from '../core/files.js';
import { mergeWorkingSets, planWorkingSet, readWorkingSet, statEachOnce, workingSetLine, type WorkingSet, type WorkingSetDetail } from './working-set.js';

type Env = Record<string, string | undefined>;

export interface RestoreOptions {
  /** The image directory (absolute). */
  image: string;
  /** Overrides the ready URL recorded in the image. */
  readyUrl?: string;
  timeoutSeconds: number;
  /** Repeat the recorded warmup request after the restore. */
  firstRequest: boolean;
  /** Sent in order after the restore, before ready (replace the image's recorded --after-restore); null: the image's. */
  afterRestore: RecordedRequest[] | null;
  /** Hash threads for the verification (default: the cores). */
  verifyThreads?: number;
  /**
   * How an image not in the page cache is read (IMAGE_STREAM_BELOW): true (default) by one stream, in CRIU's order,
   * the verification hashing behind it; false: the hash threads read it themselves, in parallel.
   */
  imageStream?: boolean;
  /**
   * Transparent huge pages set to `always` (system-wide) while CRIU restores the pages, then put back: CRIU fills
   * memory through 4 KiB page faults otherwise, even where the server had huge pages.
   */
  hugePages?: boolean;
  /**
   * Files (the weights an --after-restore hook reads back, e.g. vLLM's sleep level 2) read into the page cache
   * alongside verify, CRIU and the GPU restore, whose reads leave the disk idle part of the time; stopped when the
   * first hook is sent, from which on the server reads them itself. From a cold disk the whole restore then runs near
   * (image + weights) ÷ the disk's rate.
   */
  prefetch?: { target: string; files: string[]; threads?: number } | null;
  /**
   * Files (the weights an --after-restore hook reads back) loaded onto the server's GPU in this process while CRIU
   * restores, for the server's coldstart_load to copy GPU to GPU (stage.ts); unlisted once the hooks have answered, freed
   * after the first answer.
   * `start`: at CRIU's spawn (default) or once the verification has passed.
   */
  stage?: { target: string; files: string[]; start?: 'spawn' | 'verified' } | null;
  /**
   * The GPUs to restore onto (indexes or UUIDs of this machine's), one for each GPU the image's server used, in the
   * image's order (gpu-map.ts); null/absent: the same GPUs where present, else free ones of the same model.
   */
  gpus?: string[] | null;
  /**
   * After the restore answered, measure this machine's floor for it (floor.ts): the image and the --prefetch weights
   * read again from where the restore found them (from a cold disk: dropped from the page cache first), the GPU state
   * at pinned H2D. Off by default: it reads the bytes again while the restored server already serves.
   */
  floor?: boolean;
  env: Env;
  signal: AbortSignal;
  /** The step now under way (CRIU restore, GPU restore, ready…), for a redrawn progress line; never printed here. */
  step?: (text: string) => void;
}

/**
 * How `restore --prefetch` reads: pread (one chunk in flight per thread, where readahead(2) queues far ahead), one
 * sequential thread of 16 MiB, as the fastest disk probe reads (snapshot_floors.py: one stream of 16 MiB reads). H100
 * hosts, 8B eager: readahead with 8 threads × 8 MiB started with CRIU slowed CRIU 3.2 → 10.7 s (its small reads of the
 * server's libraries queued behind it; 2026-12-05); on 2026-12-06 one thread of 16 MiB read the weights at 1.69 GB/s
 * where two of 16 MiB read at 1.55 GB/s in the same run (one-stream probe 1.97 GB/s); two threads of 4 MiB, the
 * earlier default, read at 0.80–0.90 of the probe on four hosts, one of 16 MiB at 0.85–0.86 on two (BENCHMARKS.md).
 */
export const RESTORE_PREFETCH = { strategy: 'pread', threads: 1, chunkBytes: 16 << 20 } as const;

/**
 * An image with less than this share of its bytes in the page cache is read by one stream (RESTORE_PREFETCH's way),
 * the verification hashing behind it, and the weights' prefetch follows the same stream: one reader from the first
 * byte of the image to the last of the weights. The verification's own reads (15 threads, each 64 MiB at a time) made
 * the disk serve many streams at once, where every lent host's disk read fastest by one (1.16–1.31× eight readers).
 * Measured on an H200 (2026-12-06): the 1.83 GB image read in 1.34–1.58 s against 2.07–2.83 s by the threads and the
 * weights' read started that much earlier; the restore's total did not move beyond the noise, because a cold CRIU
 * waits on the server's libraries, not the image (docs/snapshot.md). From the page cache the threads read faster than
 * one stream (44 vs 8.9 GB/s there), so a resident image is left to them.
 */
export const IMAGE_STREAM_BELOW = 0.9;

/**
 * Who checked that the files the image maps are the ones the server had: `coldstart` (every one listed, size and mtime
 * as at snapshot time; CRIU then checks sizes only) or `criu` (its build-ID check: the image lists only some files, or
 * `changed` of them differ). `seconds`: coldstart's stats, before CRIU starts.
 */
export interface FileCheckDetail {
  by: 'coldstart' | 'criu';
  files: number;
  changed: number;
  seconds: number;
}

/** What a restore kept of the restored server's working set (null: nothing recorded, e.g. /proc unreadable). */
export interface KeptWorkingSet {
  path: string;
  files: number;
  bytes: number;
  error: string | null;
}

/**
 * The restored server's mapped file pages now (after its first answer), joined with what an earlier restore kept, kept
 * in the image folder for the next restore. Never throws: a read-only image folder is a note.
 */
function keepWorkingSet(image: string, digest: string, kept: WorkingSet | null, now: WorkingSet | null): KeptWorkingSet | null {
  if (!now) return null;
  const ws = mergeWorkingSets(kept ?? { files: [], bytes: 0 }, now);
  // Nothing new touched: the file already kept says it all (no write on each restore of a settled server).
  if (kept && JSON.stringify(ws.files) === JSON.stringify(kept.files)) return { path: restoredWorkingSetPath(image), files: ws.files.length, bytes: ws.bytes, error: null };
  try {
    return { path: keepRestoredWorkingSet(image, digest, ws), files: ws.files.length, bytes: ws.bytes, error: null };
  } catch (e) {
    return { path: restoredWorkingSetPath(image), files: ws.files.length, bytes: ws.bytes, error: e instanceof Error ? e.message : String(e) };
  }
}

/** What `restore --prefetch` read alongside the restore. */
export interface PrefetchDetail {
  target: string;
  files: number;
  /** Readers (pread, RESTORE_PREFETCH's chunk size). */
  threads: number;
  /** Bytes it went through (read or found resident); null when it was stopped before the end (the hook was sent first). */
  bytes: number | null;
  seconds: number;
  finished: boolean;
  /** The files' bytes in the page cache once the restored server answered (mincore); null: not measured. */
  residentAfter: number | null;
  coldBytesPerSecond: number | null;
  /** Why it failed (the restore went on); null: it did not. */
  error: string | null;
}

function prefetchLine(p: PrefetchDetail): string {
  const rate = p.coldBytesPerSecond === null ? '' : ` at ${formatBytes(p.coldBytesPerSecond)}/s from disk`;
  const how = p.error ? `failed after ${fmt(p.seconds)}` : p.finished ? `done in ${fmt(p.seconds)}${rate}` : `stopped after ${fmt(p.seconds)}, when the after-restore hook was sent (the server read the rest itself)`;
  return `prefetch of ${p.target} (${p.files} file(s)) alongside the restore: ${how}${p.residentAfter === null ? '' : `; ${formatBytes(p.residentAfter)} in the page cache after`}`;
}

/**
 * Said by a --huge-pages restore in a VM that hands free memory back to its hypervisor (platform/balloon.ts): CRIU's
 * huge-page faults then each take 2 MiB back from the host, and its page restore runs at that rate.
 */
export const FREE_PAGE_REPORTING_NOTE =
  "this VM's memory balloon hands free memory back to the hypervisor (virtio-balloon free page reporting), so CRIU's huge-page faults each take 2 MiB back from the host: on such a VM a 2 GiB process restored in 2.2-3.9 s, and in 1.4-1.7 s right after as much memory had been faulted in and freed (BENCHMARKS.md, 2026-12-07); a node that restores often runs faster with free page reporting off in its VMM";

/** This CPU has Intel AMX (only x86 CPUs list `amx_tile`; the addon's grant is x86-64 only and says so elsewhere). */
const amxCpu = (host: SnapshotEngines['host']): boolean => host.cpuFlags().has('amx_tile');

/**
 * Resumes the restored processes (SIGCONT). On an x86-64 CPU with AMX (`amx_tile`) each is first given back the AMX
 * permission CRIU does not restore (checkpoint-restore/criu#1448) — through native/src/amx.cc, before any of its threads
 * runs — so a server that used AMX before the snapshot does not die of SIGILL at its next AMX instruction. -ENOSPC (a
 * signal stack too small for AMX state) means the process never had it, and is no failure. Every process is sent
 * SIGCONT whatever happened. null where AMX is not in play.
 */
async function resume(pids: readonly number[], native: SnapshotEngines['native'], host: SnapshotEngines['host']): Promise<{ granted: number[]; failed: Array<{ pid: number; error: string }> } | null> {
  const amx = amxCpu(host) && native.unavailable() === null ? { granted: [] as number[], failed: [] as Array<{ pid: number; error: string }> } : null;
  for (const p of pids) {
    if (amx) {
      const r = await native.resumeGrantingAmx(p).catch((e: unknown) => ({ granted: false, result: null, error: e instanceof Error ? e.message : String(e) }));
      if (r.granted) amx.granted.push(p);
      else if (r.result !== -28) amx.failed.push({ pid: p, error: 'error' in r ? r.error : `arch_prctl returned ${r.result}` });
    }
    signal(p, 'SIGCONT');
  }
  return amx;
}

/**
 * A restored server that ended after it was resumed, explained where the cause is one CRIU leaves: died of SIGILL (an
 * illegal instruction, from its zombie's exit status), or gone on a CPU with AMX (`amx_tile`). CRIU restores neither a
 * process's AMX permission (arch_prctl ARCH_REQ_XCOMP_PERM) nor its tile state (checkpoint-restore/criu#1448), so a
 * server that used AMX before the snapshot dies of SIGILL at its next AMX instruction — torch's CPU attention in bf16
 * asks for AMX whatever ONEDNN_MAX_CPU_ISA says (dev VM with AMX, torch 2.13, CRIU 4.2.1, 2026-12-06). The error with
 * that said (details.diedOf, details.amx); null when the server is alive or nothing points there.
 */
async function restoredServerDeath(e: ColdstartError, pid: number | null, host: SnapshotEngines['host'], granted: readonly number[]): Promise<ColdstartError | null> {
  if (pid === null) return null;
  // A reset connection can come before the process has finished exiting: up to 0.2 s for it to end.
  let end = host.processEnded(pid);
  for (let i = 0; i < 10 && !end.ended; i++) {
    await new Promise((r) => setTimeout(r, 20));
    end = host.processEnded(pid);
  }
  if (!end.ended) return null;
  // AMX is the cause only where the permission was not given back (resume() below gives it back where it can).
  const amx = amxCpu(host) && !granted.includes(pid);
  const sigill = end.signal === 4;
  if (!sigill && !amx) return null;
  const what = sigill ? `The restored server (pid ${pid}) died of SIGILL (an illegal instruction).` : `The restored server (pid ${pid}) is gone.`;
  const why = amx
    ? " This CPU has Intel AMX: a server that ran bf16/int8 math on the CPU before the snapshot (torch's CPU attention or matmuls) dies of SIGILL at its next AMX instruction after a CRIU restore, which does not give back the AMX permission (checkpoint-restore/criu#1448); restore gives it back through ptrace, and could not for this process (details.amx). Allow restore to ptrace the server (root with CAP_SYS_PTRACE, Yama ptrace_scope below 3), or keep that math on the GPU or in float32 in a server you snapshot."
    : ' It used an instruction this CPU refused: restore on a machine whose CPU has the features of the one the snapshot was taken on.';
  const hint = `${what}${why}`;
  return new ColdstartError(e.code, e.message, { hint: e.hint ? `${e.hint} ${hint}` : hint, details: { ...(e.details ?? {}), ...(end.signal !== null ? { diedOf: end.signal } : {}), amx }, cause: e });
}

function damaged(image: string, bad: ImageProblem[], what: string): ColdstartError {
  return new ColdstartError('CORRUPT_FILE', `${image}: damaged image: ${bad.slice(0, 3).map((b) => b.message).join('; ')}${bad.length > 3 ? ` (+${bad.length - 3} more)` : ''}`, {
    hint: `Take the snapshot again; ${what}.`,
    details: { problems: bad },
  });
}

/** A signal to a restored process (gone already: nothing to do). */
function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

/** Whether a failure left something worth reading in the restore's work dir (CRIU's restore.log, named by the error). */
function namesLogIn(e: unknown, dir: string): boolean {
  const log = isColdstartError(e) ? e.details?.log : undefined;
  return typeof log === 'string' && dirname(log) === dir;
}

/** The report, and the restored server's answer to the repeated first request (null: not sent), for a caller that compares it. */
export async function restoreImage(o: RestoreOptions, engines: SnapshotEngines): Promise<Reported & { firstAnswer: string | null }> {
  const { host, native, clock } = engines;
  const image = o.image;
  // ---- refusals: nothing has been touched yet; the manifest is validated whole before any of it is used
  const { manifest: m, sha256: manifestSha256 } = readManifestAndDigest(image);
  const afterRestore = o.afterRestore ?? afterRestoreRequests(m);
  if (o.prefetch && afterRestore.length === 0) {
    throw new ColdstartError('BAD_FLAG', `--prefetch: ${image} has no --after-restore hook, so nothing reads ${o.prefetch.target} back after the restore`, {
      hint: 'Give the hook that reloads the weights (--after-restore URL, e.g. vLLM /wake_up after /sleep?level=2), or drop --prefetch.',
    });
  }
  if (o.stage && afterRestore.length === 0) {
    throw new ColdstartError('BAD_FLAG', `--stage: ${image} has no --after-restore hook, so nothing reads ${o.stage.target} back after the restore`, {
      hint: 'Give the hook that reloads the weights through coldstart_load (--after-restore URL, e.g. a /wake_up after /sleep?level=2), or drop --stage.',
    });
  }
  if (o.stage && o.prefetch) throw new ColdstartError('BAD_FLAG', '--stage and --prefetch: one or the other', { hint: '--stage puts weights the page cache holds on the GPU beside CRIU (a warm node); --prefetch reads a cold disk\'s weights into the page cache.' });
  const criu = await engines.criu.require(o.env);
  // One NVML reading for the fingerprint and the GPU plan.
  const gpuReading = native.unavailable() ? null : await native.gpuMemory();
  const here = await machineFingerprint(engines, criu.version, gpuReading);
  const diff = fingerprintDiff(here, m.fingerprint);
  if (diff.length) {
    throw new ColdstartError('UNSUPPORTED', `${image}: taken on a different machine: ${diff.join('; ')}`, {
      hint: 'A process image only restores where the kernel, CRIU and GPU driver match; take the snapshot on this machine.',
      details: { here, image: m.fingerprint },
    });
  }
  const gpuPlan = planGpus(m, gpuReading, o.gpus ?? null, image);
  const movedText = movesText(gpuPlan.moves);
  const stagePlan = o.stage ? planStage(o.stage, m, gpuPlan.moves, gpuReading, native) : null;
  if (!host.isRoot()) throw new ColdstartError('PERMISSION', 'restore needs root: CRIU restores processes with their original pids (run as root)');
  const busyPids = m.pids.filter((p) => host.pidAlive(p));
  if (busyPids.length) {
    throw new ColdstartError('ENV', `${image}: pid${busyPids.length > 1 ? 's' : ''} ${busyPids.join(', ')} already in use on this machine (the server restores with its original pids)`, {
      hint: 'Stop the process using it (an earlier restore of this image?) and try again.',
      details: { pids: busyPids },
    });
  }
  const busyPorts: string[] = [];
  for (const p of m.ports) if (await host.portInUse(p.port, p.address)) busyPorts.push(`${p.address}:${p.port}`);
  if (busyPorts.length) throw new ColdstartError('ENV', `${image}: port${busyPorts.length > 1 ? 's' : ''} ${busyPorts.join(', ')} already in use`, { hint: 'Stop whatever listens there (an earlier restore of this image?) and try again.', details: { ports: busyPorts } });
  const avail = host.memAvailableBytes();
  if (avail !== null && avail < m.imageBytes) {
    throw new ColdstartError('ENV', `${image}: the image needs ${formatBytes(m.imageBytes)} of memory, ${formatBytes(avail)} is available`, { hint: 'Free memory (or stop other servers) and try again.' });
  }
  // The restored server writes its output to IMAGE.log (the path snapshot used), never to the manifest's path.
  const log = m.log === null ? null : serverLogPath(image);
  if (log) {
    const st = lstatOrNull(log);
    if (st && !st.isFile() && !st.isSymbolicLink()) throw new ColdstartError('BAD_INPUT', `${log}: not a regular file; restore puts the server's log there`, { hint: 'Move it away and try again; nothing was touched.' });
    const logSize = m.files.find((f) => f.name === LOG_COPY)!.bytes;
    const free = host.diskFreeBytes(dirname(log));
    if (free !== null && free < logSize + 1024 * 1024) throw new ColdstartError('DISK_FULL', `${dirname(log)}: ${formatBytes(free)} free, the server's log needs ${formatBytes(logSize)}`, { hint: 'Free some space there.' });
  }

  // Everything CRIU parses (every file but the page data: process tree, mappings, descriptors — KiB to MiB) verified
  // whole before CRIU sees it, and every file's size; the page data below, while CRIU restores.
  const metaTime = stopwatch(clock);
  const untilResumed = stopwatch(clock);
  let resumedSeconds: number | null = null;
  let amxGranted: number[] = [];
  const metaBad = await verifyImage(image, m, { threads: o.verifyThreads, signal: o.signal, hash: (n) => !isPageData(n) });
  if (metaBad.length) throw damaged(image, metaBad, 'nothing was restored or started');
  // What CRIU would certainly be refused with here (the image's files are verified: its seccomp.img is CRIU's own).
  const permissions = host.tracerPermissions();
  refuseWhereCriuWouldBe('restore', permissions, restorePermissionFixes(permissions, imageHasSeccompFilters(image, m)), 'Nothing was restored.');
  const metaSeconds = metaTime();

  // ---- restore
  // How much of the image the page cache already holds (mincore): a restore from cache and one from disk differ.
  const imagePaths = m.files.map((f) => imageFile(image, f.name, `${image}: manifest files[].name`));
  const resident = native.unavailable() ? null : await native.residentBytes(imagePaths);
  // --floor reads the weights again from where the restore finds them: asked now, before the clock starts.
  // The weights the after-restore hook reads back, where the command names them (--prefetch or --stage).
  const hookWeights = o.prefetch?.files ?? o.stage?.files ?? null;
  const weightsBytes = o.floor && hookWeights ? filesBytes(hookWeights) : 0;
  const weightsResident = o.floor && hookWeights && !native.unavailable() ? await native.residentBytes(hookWeights) : null;
  // --stage reads what the page cache lacks of the weights from the disk beside CRIU: asked now, said in the report.
  const stageResident = stagePlan?.gpu ? await native.residentBytes(o.stage!.files) : null;
  const total = stopwatch(clock);
  const work = mkdtempSync(join(tmpdir(), 'coldstart-restore-'));
  const times: Record<string, number> = {};
  const notes: string[] = [...gpuPlan.notes];
  let hugePages: HugePagesWindow | null = null;
  let server: ServerHandle | undefined;
  // Every byte of the image against the chunk digests taken at snapshot time, read and hashed on worker threads while
  // CRIU restores the tree stopped (--leave-stopped; both read the same files, so one read serves both from the page
  // cache). The tree is resumed only once every byte matched; a damaged image's tree is killed without ever having run.
  // Started just after CRIU is spawned: creating the workers holds this thread for tens of milliseconds (80–100 ms
  // for 15 on the 2-core dev VM), which CRIU should not wait for.
  let verifySeconds = 0;
  const stopVerify = new AbortController();
  const stopPrefetch = new AbortController();
  let prefetchTime = stopwatch(clock);
  // What runs alongside CRIU once it is spawned (null until then): the verification, the image's stream (a cold image)
  // and the prefetch behind it.
  const flight: { verifying: Promise<ImageProblem[]> | null; reading: Promise<unknown> | null; prefetching: Promise<{ r: PrefetchResult; seconds: number }> | null; staging: Promise<StagedLoad | null> | null } = {
    verifying: null,
    reading: null,
    prefetching: null,
    staging: null,
  };
  // --stage: the weights onto the server's GPU in this process, beside CRIU (stage.ts); listed for coldstart_load just
  // before the hooks are sent, freed once they answered or the restore failed.
  const stopStage = new AbortController();
  const stageBefore = new Map<string, FileIdentity>();
  let stageSeconds: number | null = null;
  let stageFailed: string | null = null;
  let staged: StagedLoad | null = null;
  let stagedBytes = 0;
  let stageEntry: string | null = null;
  const startStage = (gpu: string): Promise<StagedLoad | null> => {
    const t = stopwatch(clock);
    const go = o.stage!.start === 'verified' ? flight.verifying!.then((bad) => (bad.length ? Promise.reject(new ColdstartError('INTERRUPTED', 'the image is damaged')) : undefined)) : Promise.resolve();
    const p = go
      .then(() => {
        for (const f of o.stage!.files) stageBefore.set(f, fileIdentity(f));
        return native.stage(o.stage!.files, gpu, AbortSignal.any([o.signal, stopStage.signal]));
      })
      .then(
        (r) => {
          stageSeconds = t();
          staged = r;
          stagedBytes = r.bytes;
          return r;
        },
        (e: unknown) => {
          stageSeconds = t();
          if (!(isColdstartError(e) && e.code === 'INTERRUPTED')) stageFailed = e instanceof Error ? e.message : String(e);
          return null;
        },
      );
    return p;
  };
  // Unlisted first (coldstart_load then no longer finds it), then freed; never throws.
  const letGoOfStage = async (): Promise<void> => {
    stopStage.abort();
    await flight.staging;
    if (stageEntry) unlistStage(stageEntry);
    const s = staged as StagedLoad | null;
    staged = null; // let go of once; stageEntry stays for the report
    if (s) {
      try {
        native.unstage(s.id);
      } catch (e) {
        notes.push(`--stage: freeing the staged copy failed (it goes when coldstart exits): ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };
  // One core left to CRIU, whose page restore is one thread bound by the CPU: the hash only has to keep ahead of it.
  const verifyThreads = o.verifyThreads ?? Math.max(1, availableParallelism() - 1);
  // A cold image is read by one stream the hash follows (IMAGE_STREAM_BELOW); `imageRead` is what it read.
  const streamImage = o.imageStream !== false && resident !== null && resident < IMAGE_STREAM_BELOW * m.imageBytes;
  let imageRead: { bytes: number; seconds: number } | null = null;
  const startVerify = (): Promise<ImageProblem[]> => {
    const verifyTime = stopwatch(clock);
    const verifySignal = AbortSignal.any([o.signal, stopVerify.signal]);
    const v = verifyImage(image, m, {
      threads: verifyThreads,
      signal: verifySignal,
      hash: isPageData,
      ...(streamImage
        ? {
            readAhead: (paths: string[]) => {
              const r = native.readInOrder(paths, RESTORE_PREFETCH.chunkBytes, verifySignal);
              // A head start: the hash reads what the stream did not; a failure is a note, never a failed restore.
              flight.reading = r.done.then(
                (x) => (imageRead = x),
                (e: unknown) => {
                  if (!(isColdstartError(e) && e.code === 'INTERRUPTED')) notes.push(`reading the image by one stream failed (the verification read it instead): ${e instanceof Error ? e.message : String(e)}`);
                },
              );
              return r.read;
            },
          }
        : {}),
    }).then((bad) => {
      verifySeconds = metaSeconds + verifyTime();
      if (bad.length) stopPrefetch.abort(); // a damaged image: the weights are never needed
      return bad;
    });
    v.catch(() => undefined); // awaited below; CRIU may fail first
    // The weights the after-restore hook will read, into the page cache once the image has been read (the image's reads
    // come first): behind the image's stream where there is one, else once the verification has read it. Not held back
    // until CRIU is done as well: CRIU's small reads of the server's libraries go slower behind the stream (a cold CRIU
    // took 4.0 s beside it, 2.3-2.8 s when it waited for CRIU), but the disk idle until CRIU was done cost more (cold
    // restores at 1.37x their same-run floor, against 1.24-1.27x this way; H100 hosts, 2026-12-06).
    if (o.prefetch) {
      const files = o.prefetch.files;
      // Settled once the image is read, or as soon as the prefetch is stopped (a stream still reading then never holds
      // the restore's end).
      const stopped = new Promise<void>((r) => (stopPrefetch.signal.aborted ? r() : stopPrefetch.signal.addEventListener('abort', () => r(), { once: true })));
      // verifyImage has called readAhead (flight.reading) before it returned, where it streams the image.
      const pf = Promise.race([flight.reading ?? v, stopped]).then(() => {
        if (stopPrefetch.signal.aborted) throw new ColdstartError('INTERRUPTED', 'prefetch: not started, the image is damaged or the restore failed');
        prefetchTime = stopwatch(clock);
        return native.prefetch({ ...RESTORE_PREFETCH, ...(o.prefetch!.threads ? { threads: o.prefetch!.threads } : {}), files, signal: AbortSignal.any([o.signal, stopPrefetch.signal]) });
      }).then((r) => ({ r, seconds: prefetchTime() }));
      pf.catch(() => undefined); // awaited below (stopped when the hook was sent, or on a failure)
      flight.prefetching = pf;
    }
    return v;
  };
  // Stops the prefetch at once (the server reads the weights itself now); nothing on the restore's path waits for it.
  let prefetchStoppedAfter: number | null = null;
  const stopPrefetching = (): void => {
    if (!flight.prefetching || stopPrefetch.signal.aborted) return;
    prefetchStoppedAfter = prefetchTime();
    stopPrefetch.abort();
  };
  // How far it got, asked once the restored server has answered: the page-cache query over the weights (55 ms for
  // 16 GB on the dev VM) and the wait for its last read are no part of the restore's time.
  const prefetched = async (): Promise<PrefetchDetail | null> => {
    const prefetching = flight.prefetching;
    if (!prefetching || !o.prefetch) return null;
    stopPrefetching();
    // A prefetch is only a head start: one that failed is a warning, never a failed restore.
    let failed: string | null = null;
    const at = await prefetching.catch((e: unknown) => {
      if (!(isColdstartError(e) && e.code === 'INTERRUPTED')) failed = e instanceof Error ? e.message : String(e);
      return null;
    });
    if (failed) notes.push(`--prefetch ${o.prefetch.target} failed (the restore went on without it): ${failed}`);
    const after = native.unavailable() ? null : await native.residentBytes(o.prefetch.files);
    return { target: o.prefetch.target, files: o.prefetch.files.length, threads: o.prefetch.threads ?? RESTORE_PREFETCH.threads, bytes: at?.r.bytes ?? null, seconds: at?.seconds ?? prefetchStoppedAfter ?? prefetchTime(), finished: at !== null, residentAfter: after, coldBytesPerSecond: at?.r.coldBytesPerSecond ?? null, error: failed };
  };
  // The pages of its libraries the server had mapped (working-set.ts; the restored server's own where a restore kept
  // them), read ahead from the moment CRIU is spawned: on a cold node they are what the resumed server faults in first,
  // each fault otherwise reading a whole readahead window.
  const stopWorkingSet = new AbortController();
  let workingSetRead: Promise<WorkingSetDetail> | null = null;
  const workingSetDone = async (): Promise<WorkingSetDetail | null> => {
    if (!workingSetRead) return null;
    // A head start only: one that failed is a note, never a failed restore.
    const w = await workingSetRead;
    if (w.error) notes.push(`reading the server's library pages ahead failed (the restore went on without it): ${w.error}`);
    return w;
  };
  const neverRan = 'the restored processes were never resumed (killed while stopped): nothing of the server ran';
  // What is read ahead: the restored server's own working set where an earlier restore kept one (what it touched once
  // restored), else the manifest's (all it had touched before the snapshot).
  const toRead = workingSetToRead(image, m, manifestSha256);
  if (toRead.note) notes.push(toRead.note);
  const kept = toRead.kept ? toRead.ws : null;
  // Every file the server mapped, still as the snapshot found it (size and mtime): checked here, all at once (libuv's
  // pool), so CRIU checks sizes only and reads no ELF's build-ID (criu.ts filesChecked); the same stats (each path
  // asked once) plan the working set's read. An image that lists only some of its files (taken before, or past the
  // working set's bounds), or a file changed since, is left to CRIU's own check.
  const checkTime = stopwatch(clock);
  const stat = statEachOnce();
  const [filesPlan, keptPlan] = m.workingSet?.files.length ? await Promise.all([planWorkingSet(m.workingSet, stat), kept ? planWorkingSet(kept, stat) : null]) : [null, null];
  const changed = filesPlan?.skipped ?? [];
  const filesChecked = m.workingSet?.complete === true && filesPlan !== null && changed.length === 0;
  const fileCheck: FileCheckDetail = { by: filesChecked ? 'coldstart' : 'criu', files: m.workingSet?.files.length ?? 0, changed: changed.length, seconds: checkTime() };
  if (changed.length) notes.push(`${changed.length} of the files the server maps are not as the snapshot found them (${changed[0]!.path}: ${changed[0]!.why}): CRIU checks them by their ELF build-IDs, which reads each from the disk`);
  try {
    // The server's output at dump time, put back at IMAGE.log (by rename: a link there is replaced, not followed)
    // and handed to CRIU as the file the image had open at m.log, which is never opened (--inherit-fd).
    const logFd = log ? putLogBack(imageFile(image, LOG_COPY, image), log) : undefined;
    o.step?.(`CRIU restore of ${formatBytes(m.imageBytes)} (${m.pids.length} process(es)), every byte verified meanwhile…`);
    const criuTime = stopwatch(clock);
    let pid: number;
    hugePages = o.hugePages ? hugePagesOn(host.thp, 'restored') : null;
    try {
      const restoring = engines.criu.restore(criu, image, work, o.env, o.timeoutSeconds * 1000, logFd === undefined ? undefined : { fd: logFd, path: m.log! }, { leaveStopped: true, filesChecked });
      flight.verifying = startVerify(); // CRIU has been spawned (synchronously, above)
      if (stagePlan?.gpu) flight.staging = startStage(stagePlan.gpu);
      if (toRead.ws && native.unavailable() === null) {
        workingSetRead = readWorkingSet(toRead.ws, native.readRanges, AbortSignal.any([o.signal, stopWorkingSet.signal]), () => clock.now(), (keptPlan ?? filesPlan) ?? undefined);
      }
      pid = await restoring;
    } finally {
      if (logFd !== undefined) closeSync(logFd);
      if (hugePages) hugePagesBack(host.thp, hugePages);
    }
    times['criu-restore'] = criuTime();
    if (hugePages?.note) notes.push(hugePages.note);
    if (hugePages && host.freePageReporting()) notes.push(FREE_PAGE_REPORTING_NOTE);
    // From here on the restored tree is ours to stop if anything fails: every recorded pid and what it started since.
    server = engines.server.adopt(pid, { what: 'restore', command: m.command, known: m.pids, stopGraceSeconds: STOP_GRACE_SECONDS });
    o.step?.('finishing the verification of the image (the restored tree stays stopped until every byte matches)…');
    const bad = await flight.verifying!;
    if (bad.length) {
      for (const p of m.pids) signal(p, 'SIGKILL'); // stopped, never resumed: nothing to stop gracefully
      throw damaged(image, bad, neverRan);
    }
    const amx = await resume(m.pids, native, host);
    amxGranted = amx?.granted ?? [];
    resumedSeconds = untilResumed();
    if (amx?.failed.length) notes.push(`AMX permission not given back to ${amx.failed.map((f) => `pid ${f.pid} (${f.error})`).join(', ')}: a server that used Intel AMX before the snapshot dies of SIGILL at its next AMX instruction (checkpoint-restore/criu#1448)`);
    if (m.gpuPids.length) {
      if (native.unavailable()) throw new ColdstartError('NATIVE_UNAVAILABLE', 'the image holds GPU state but the native addon is unavailable');
      const g = stopwatch(clock);
      o.step?.(`restoring GPU memory of ${m.gpuPids.length} process(es)${movedText ? ` (${movedText})` : ''}…`);
      for (const p of m.gpuPids) {
        await native.checkpoint(p, 'restore', gpuPlan.pairs ? { gpuPairs: gpuPlan.pairs.get(p) ?? [] } : undefined).catch((e: unknown) => {
          // Said where the driver was handed pairs: the part of the refusal that is ours to explain.
          if (!gpuPlan.pairs || !isColdstartError(e)) throw e;
          throw new ColdstartError(e.code, `${e.message} (restoring onto ${movedText || 'the GPUs --gpus named'})`, {
            cause: e,
            details: e.details,
            hint: "The driver restores GPU memory only onto a GPU of the same chip with enough free memory, given a pair for every GPU the process used; a process started with CUDA_VISIBLE_DEVICES hiding some of the machine's GPUs was refused even with unchanged pairs (CUDA_ERROR_INVALID_VALUE, NVIDIA/cuda-python#1983). The restored tree was stopped.",
          });
        });
      }
      times['gpu-restore'] = g();
      const u = stopwatch(clock);
      for (const p of m.gpuPids) await native.checkpoint(p, 'unlock');
      times['gpu-unlock'] = u();
    }
    // The prefetch has filled the disk's idle time until now; from here the hook's server reads the weights itself, and a
    // prefetch still reading beside it is a second stream at the same place on the disk: stopped as the hook is sent.
    // Cold restores, H100 host (2026-12-06): 1.06-1.08x their floor this way, 1.19-1.22x with the prefetch running
    // until the hook answered (BENCHMARKS.md).
    stopPrefetching();
    let stageReadyAt: number | null = null;
    let stageWaited: number | null = null;
    if (flight.staging) {
      o.step?.('waiting for the staged weights…');
      const w = stopwatch(clock);
      const s = await flight.staging;
      stageWaited = w();
      if (s) {
        const listed = listStage(stageDir(o.env), s, stageBefore, stagePlan!.gpu!, m.pids);
        if ('entry' in listed) stageEntry = listed.entry;
        else stageFailed = listed.skipped;
        stageReadyAt = metaSeconds + total();
      }
    }
    const hooks = await sendHooks(afterRestore, '--after-restore', o.timeoutSeconds, o.signal);
    // The wake-up has copied what it copies: unlisted now, freed once the timed part is over (cuMemFree of the copy is
    // no part of the restore's time; the server's next allocations do not wait for it).
    if (stageEntry) unlistStage(stageEntry);
    if (hooks.seconds !== null) times['after-restore'] = hooks.seconds;
    const readyUrl = o.readyUrl ?? m.readyUrl ?? undefined;
    let readySeconds: number | null = null;
    let olderAnswer: () => string | null = () => null;
    if (readyUrl) {
      o.step?.(`waiting until ${readyUrl} answers…`);
      const rt = stopwatch(clock);
      const ready = await server.waitReady({ url: readyUrl, timeoutSeconds: o.timeoutSeconds, signal: o.signal, pollMs: 25 });
      readySeconds = rt();
      olderAnswer = ready.olderAnswer;
    }
    let first: null | { seconds: number; status: number; sameAsSnapshot: boolean; bodySha256: string } = null;
    let firstAnswer: string | null = null;
    if (m.warmup && o.firstRequest) {
      o.step?.(`repeating the first request ${m.warmup.method} ${m.warmup.url}…`);
      const r = await sendRecorded(m.warmup, o.timeoutSeconds, o.signal);
      firstAnswer = r.body.toString('utf8');
      const d = answerDigests(r.body);
      // As answers compare (server/answer.ts: ids and timestamps left out); an image before answerSha256, by bytes.
      first = { seconds: r.seconds, status: r.status, bodySha256: d.bodySha256, sameAsSnapshot: sameAnswer(m.warmup, d) };
    }
    const restoredTotal = metaSeconds + total(); // the metadata verification came first, before the clock for the rest
    const older = olderAnswer(); // once the timed part is over
    if (older) notes.push(older);
    await letGoOfStage();
    const prefetch = await prefetched();
    const stage: StageDetail | null = o.stage
      ? {
          target: o.stage.target,
          files: o.stage.files.length,
          bytes: stageEntry ? stagedBytes : 0,
          seconds: stageSeconds,
          readyAt: stageEntry ? stageReadyAt : null,
          waitedSeconds: stageWaited,
          gpu: stagePlan?.gpu ?? null,
          residentBefore: stageResident,
          skipped: stageEntry ? null : stagePlan?.skipped ?? stageFailed ?? 'not staged',
        }
      : null;
    if (stage && stageResident !== null && stagePlan && stageResident < IMAGE_STREAM_BELOW * stagePlan.bytes) {
      notes.push(`--stage: ${formatBytes(stageResident)} of ${o.stage!.target} was in the page cache; the rest was read from the disk beside CRIU (for a cold disk, --prefetch reads the weights into the page cache alongside the restore instead)`);
    }
    const readAhead = await workingSetDone();
    const workingSet = readAhead ? { ...readAhead, source: kept ? ('restored' as const) : ('snapshot' as const) } : null;
    const keptNow = toRead.ws ? keepWorkingSet(image, manifestSha256, kept, host.workingSet(m.pids)) : null;
    if (keptNow?.error) notes.push(`the restored server's working set was not kept (the next restore reads the manifest's): ${keptNow.error}`);
    rmSync(work, { recursive: true, force: true });
    const gpuSeconds = m.gpuPids.length ? (times['gpu-restore'] ?? 0) + (times['gpu-unlock'] ?? 0) : null;
    // --floor: this machine's floor for the way just taken, now that the timed part is over (floor.ts).
    let floor: RestoreFloor | null = null;
    if (o.floor) {
      o.step?.('measuring the floor (the image and weights read again, the GPU copy rate)…');
      const where = (residentBytes: number | null, bytes: number): From => (residentBytes !== null && residentBytes >= IMAGE_STREAM_BELOW * bytes ? 'page cache' : 'disk');
      floor = await measureRestoreFloor(native, {
        image: { files: imagePaths, from: where(resident, m.imageBytes) },
        weights: hookWeights ? { files: hookWeights, from: where(weightsResident, weightsBytes) } : null,
        gpuBytes: m.kinds?.gpuStateBytes ?? usedBytesSum(m.gpuUsed),
        gpuPids: m.gpuPids,
        restoredSeconds: restoredTotal,
        signal: o.signal,
        notes: [
          ...(resident === null ? ["the image's page-cache residency before the restore was not measured: its floor is read from the disk"] : []),
          ...(hookWeights && weightsResident === null ? ["the weights' page-cache residency before the restore was not measured: their floor is read from the disk"] : []),
          // A wake-up reading its weights back is most of a hooked restore: without --prefetch its files are not known.
          ...(afterRestore.length && !hookWeights ? ['what the --after-restore hook had the server read (a wake-up reading its weights back) is not in this floor: give --prefetch or --stage WEIGHTS to count it'] : []),
        ],
      });
    }

    const report = newReport('restore');
    report.target = { image, command: m.command, pid, ports: m.ports.map((p) => `${p.address}:${p.port}`), gpuPids: m.gpuPids };
    report.phases = [
      phase('verify', verifySeconds, `every byte of the image (${formatBytes(m.imageBytes)}) against its snapshot-time digests, alongside criu restore (tree held stopped until it passed)${streamImage ? '; read by one stream, hashed behind it' : ''}`),
      phase('criu-restore', times['criu-restore']!),
      phase('gpu-restore', gpuSeconds, undefined, gpuSeconds === null ? 'not measured: the image holds no GPU state' : undefined),
      phase('after-restore', times['after-restore'] ?? null, afterRestore.length ? afterRestore.map((h) => `${h.method} ${h.url}`).join(', then ') : undefined, afterRestore.length ? undefined : 'not measured: no --after-restore hook'),
      phase('ready', readySeconds, 'after the restore, until the ready URL answered', readySeconds === null ? 'not measured: no ready URL' : undefined),
      phase('first-request', first?.seconds ?? null, undefined, first ? undefined : m.warmup ? 'not measured: --no-first-request' : 'not measured: the snapshot had no --warmup request'),
    ];
    if (floor) {
      // Each step's share of the floor: the image's bytes for CRIU's, the GPU state for the driver's, the weights for
      // the hook that reads them back.
      const at = (name: string) => report.phases.find((p) => p.name === name)!;
      at('criu-restore').floor = partFloor(floor.image);
      if (floor.gpu) at('gpu-restore').floor = partFloor(floor.gpu);
      if (floor.weights && afterRestore.length) at('after-restore').floor = partFloor(floor.weights);
    }
    report.total = { seconds: restoredTotal };
    // Like with like: a restore that sent no first request (--no-first-request) is compared with the cold start's ready.
    const toReadyOnly = first === null && m.cold.firstRequestSeconds !== null;
    const coldTotal = toReadyOnly ? m.cold.readySeconds : m.cold.totalSeconds;
    report.details = {
      image,
      pid,
      imageBytes: m.imageBytes,
      cold: m.cold,
      verifySeconds,
      verifyBytesPerSecond: verifySeconds > 0 ? m.imageBytes / verifySeconds : null,
      verifyThreads,
      /**
       * How the image's page data was read: by one stream the hash followed (an image mostly not in the page cache,
       * IMAGE_STREAM_BELOW), with what it read (null: it stopped early, the hash read the rest), or by the hash threads.
       */
      imageRead: streamImage ? { by: 'one stream', read: imageRead } : { by: 'hash threads' },
      afterRestore: hooks.sent,
      kinds: m.kinds ?? 'not measured',
      restored: { resumedSeconds, criuRestoreSeconds: times['criu-restore'], afterRestoreSeconds: times['after-restore'] ?? null, gpuRestoreSeconds: times['gpu-restore'] ?? null, gpuUnlockSeconds: times['gpu-unlock'] ?? null, readySeconds, firstRequest: first, totalSeconds: restoredTotal },
      /** The cold start recorded in the image (to ready where this restore sent no first request) ÷ this restore's total. */
      speedup: restoredTotal > 0 ? coldTotal / restoredTotal : null,
      imageReadBytesPerSecond: times['criu-restore']! > 0 ? m.imageBytes / times['criu-restore']! : null,
      /** Image bytes in the page cache before the restore (mincore); null: not measured. */
      imageResidentBytes: resident,
      /** Where each GPU of the image came back (the same one unless moved), and whether the driver was given pairs. */
      gpus: gpuPlan.moves.length ? { moves: gpuPlan.moves, paired: gpuPlan.pairs !== null } : null,
      ...(hugePages ? { hugePages: hugePagesDetail(hugePages) } : {}),
      ...(prefetch ? { prefetch } : {}),
      ...(stage ? { stage } : {}),
      /**
       * The server's library pages read ahead; null: the image records none. `source`: the restored server's own
       * (kept by an earlier restore) or the manifest's.
       */
      workingSet,
      /** What the restored server touched of its files after its first answer, kept for the next restore (merged). */
      workingSetKept: keptNow,
      fileCheck,
      /** This machine's floor for this restore (--floor, floor.ts); not asked: why not. */
      floor: floor ?? { notMeasured: 'not asked: --floor measures it after the restore' },
      /** On a CPU with Intel AMX: the processes resumed with the AMX permission given back, and those it failed for. */
      ...(amx ? { amx } : {}),
    };
    report.warnings.push(...notes);
    if (first && !first.sameAsSnapshot) report.warnings.push(`the first request's answer differs from the one recorded at snapshot time (sha256 ${first.bodySha256.slice(0, 12)}…)${whereAnswerDiffers(image, m, firstAnswer)}`);
    return {
      report,
      // A first answer unlike the snapshot's is a verification that found a mismatch: exit 1, as optimize's.
      ...(first && !first.sameAsSnapshot ? { exitCode: ExitCode.BUDGET } : {}),
      firstAnswer,
      human: () =>
        [
          `restored \`${m.command.join(' ')}\` from ${image} as pid ${pid} (${formatBytes(m.imageBytes)}, ${resident === null ? 'page-cache residency not measured' : `${Math.round((100 * resident) / Math.max(1, m.imageBytes))}% in the page cache before`})`,
          table(
            [
              ['start (spawn → ready)', fmt(m.cold.readySeconds), '—'],
              ['  verify (every byte, alongside criu)', '—', fmt(verifySeconds)],
              ['  criu restore', '—', fmt(times['criu-restore'])],
              ['  gpu restore + unlock', '—', gpuSeconds === null ? 'no GPU state' : fmt(gpuSeconds)],
              ...(afterRestore.length ? [[`  after-restore hook${afterRestore.length > 1 ? `s (${afterRestore.length})` : ''}`, '—', fmt(times['after-restore'])] as [string, string, string]] : []),
              ...(prefetch ? [[`  prefetch (alongside, until the hook was sent)`, '—', fmt(prefetch.seconds)] as [string, string, string]] : []),
              ['  ready', '—', fmt(readySeconds)],
              ['first request', fmt(m.cold.firstRequestSeconds), fmt(first?.seconds)],
              [toReadyOnly ? 'total (to ready)' : 'total', fmt(coldTotal), fmt(restoredTotal)],
            ],
            ['', 'cold', 'restored'],
          ),
          ...(prefetch ? [prefetchLine(prefetch)] : []),
          ...(stage ? [stageLine(stage)] : []),
          ...(workingSet ? [workingSetLine(workingSet, kept ? ', those the restored server touched the last time, alongside CRIU' : ', alongside CRIU')] : []),
          ...(movedText ? [`GPU state restored onto another GPU: ${movedText}`] : []),
          ...(floor ? restoreFloorLines(floor, `${fmt(restoredTotal)} ${toReadyOnly ? 'to ready' : first ? 'to the first answer' : 'in all'}`) : []),
          `${speedText(coldTotal, restoredTotal)} the cold start recorded in the image${toReadyOnly ? ' (to ready: this restore sent no first request)' : ''}${first ? `; first answer ${first.sameAsSnapshot ? 'identical to' : 'DIFFERENT from'} the snapshot's` : ''}`,
          `the server is left running as pid ${pid}${m.pids.length > 1 ? ` (and ${m.pids.length - 1} more processes of its tree)` : ''}: stop it with \`kill ${pid}\`${m.gpuPids.length ? `, or free its GPU and keep it with \`coldstart park ${m.gpuPids[0]}\`` : ''}${log ? `; its output goes to ${log}` : ''}`,
        ].join('\n'),
    };
  } catch (e) {
    stopVerify.abort();
    stopPrefetch.abort();
    await letGoOfStage();
    stopWorkingSet.abort();
    await flight.prefetching?.catch(() => undefined);
    await flight.reading?.catch(() => undefined);
    await workingSetRead;
    // A restored server that died once resumed (SIGILL; Intel AMX): asked before its tree is stopped (and reaped).
    const died = server && resumedSeconds !== null && isColdstartError(e) ? await restoredServerDeath(e, server.pid(), host, amxGranted) : null;
    // All or nothing: a server restored but not brought back (GPU restore failed, never ready) is stopped whole.
    await server?.stop();
    // CRIU failed while the verification ran: a damaged image is the better explanation when there is one.
    const bad = isColdstartError(e) && e.code === 'CORRUPT_FILE' ? null : await flight.verifying?.catch(() => null);
    if (bad?.length && !server) {
      rmSync(work, { recursive: true, force: true });
      throw damaged(image, bad, 'nothing of the server ran');
    }
    // The work dir stays only when the failure names a log in it (CRIU's restore.log).
    if (!namesLogIn(e, work)) rmSync(work, { recursive: true, force: true });
    throw died ?? e;
  }
}

/** "2.3× faster than", "1.2× slower than" (a ratio under one said the way round a reader expects), or "compared with". */
export function speedText(coldSeconds: number, restoredSeconds: number): string {
  if (!(restoredSeconds > 0) || !(coldSeconds > 0)) return 'compared with';
  return coldSeconds >= restoredSeconds ? `${(coldSeconds / restoredSeconds).toFixed(1)}× faster than` : `${(restoredSeconds / coldSeconds).toFixed(1)}× slower than`;
}

/**
 * Where the restored server's first answer differs from the snapshot's, from the image's verified copy of it
 * (ANSWER_COPY; server/compare.ts, the reading optimize compares by): ": at .choices[0].text: \"Paris.\" vs \"Lyon.\"".
 * Empty where the image keeps no copy (taken before it, or the copy is not among its verified files).
 */
export function whereAnswerDiffers(image: string, m: Manifest, now: string | null): string {
  const copy = m.files.find((f) => f.name === ANSWER_COPY);
  // An answer is at most MAX_BODY (server/http.ts); a copy said to be larger is not one snapshot wrote.
  if (now === null || !copy || copy.bytes > MAX_BODY) return '';
  let c: ReturnType<typeof compareAnswers>;
  try {
    const then = readFileSync(imageFile(image, ANSWER_COPY, image), 'utf8');
    c = compareAnswers(then, now, 'F32', 'a restored server answers exactly as it did', { a: "the snapshot's", b: "the restored server's" });
  } catch {
    return ''; // unreadable, or nested past the stack: the warning stands without the place
  }
  if (c.kind === 'text') return c.verdict === 'identical' ? '' : ': text answers, not the same bytes';
  if (c.detail) return `: at ${c.detail.replace(/^\./, '')}`;
  const d = c.largestDifference;
  return d ? `: at ${d.path.replace(/^\./, '')}, ${d.baseline} then, ${d.optimized} now` : '';
}

/**
 * Whether the image's processes had seccomp filters: CRIU 4.x writes seccomp.img whether or not they had any, its one
 * entry empty when none (a CRIU image file: two 4-byte magics, then each entry's size as a u32 and its bytes); seen on
 * CRIU 4.2.1 (2026-12-08): 0 for a plain process, 14 bytes for one filter. Older CRIU writes it only with filters.
 */
export function imageHasSeccompFilters(image: string, m: Manifest): boolean {
  if (!m.files.some((f) => f.name === 'seccomp.img')) return false;
  const fd = openSync(imageFile(image, 'seccomp.img', image), 'r');
  try {
    const head = Buffer.alloc(12);
    return readSync(fd, head, 0, 12, 0) === 12 && head.readUInt32LE(8) > 0;
  } finally {
    closeSync(fd);
  }
}

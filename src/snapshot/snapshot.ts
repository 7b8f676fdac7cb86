/**
 * `snapshot`: start a server through the one lifecycle (its whole tree stopped on any failure, setsid children
 * included), wait until it is ready and warmed, checkpoint the CUDA state of every process of it that holds a
 * context (lock, then checkpoint: GPU memory to host memory), CRIU-dump the tree into an image directory written
 * atomically, with a manifest (machine fingerprint, files with sizes and hashes, ports, the cold start measured on
 * the way).
 */
import { closeSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { nowSeconds } from '../core/clock.js';
import { makeDirs } from '../core/paths.js';
import { removeTemp, tempPathFor, trackTemp } from '../core/atomic.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { newReport } from '../core/report.js';
import { sendRecorded, type RecordedRequest } from '../server/api.js';
import { answerDigests, sameAnswer } from '../server/answer.js';
import { refuseReadyAlready, requireServerCommand, type ServerHandle } from '../server/lifecycle.js';
import { mapsFile } from '../platform/procfs.js';
import { pollUntil } from '../server/poll.js';
import { listImageFiles } from './criu.js';
import { hashFiles, CHUNK_HASH } from './hash.js';
import { imageKinds } from './image-kinds.js';
import { stopwatch, type SnapshotEngines } from './engines.js';
import { createServerLog, guardImageOutput, replaceImage, serverLogPath, symlinkedLog } from './image.js';
import { ANSWER_COPY, LOG_COPY, MANIFEST, MANIFEST_SCHEMA, lstatOrNull, type Fingerprint, type ImageKinds, type Manifest } from './manifest.js';
import { cudaProcesses, gpuFingerprint } from './native.js';
import { permissionFixes, refuseWhereCriuWouldBe } from './doctor.js';
import { nativeCodeOf, type GpuMemoryResult } from '../native.js';
import { gpusUsed, usedBytesSum } from './gpu-map.js';
import { WORKING_SET_MAX_FILES, WORKING_SET_MAX_RANGES } from './working-set.js';
import { fmt, phase, table, type Reported } from './report.js';

type Env = Record<string, string | undefined>;

export interface SnapshotOptions {
  /** The server command. */
  command: string[];
  /** The image directory to write (absolute). */
  output: string;
  readyUrl?: string;
  readyLog?: RegExp;
  /** Sent once ready, timed as the first request, recorded for restore to repeat and compare. */
  warmup: RecordedRequest | null;
  /**
   * With a warmup: page out the server's file pages and send the warmup again, so that the image's working set holds
   * what the server touches to answer, not what it touched to start (learnWorkingSet). false: --no-working-set-warmup.
   */
  workingSetWarmup?: boolean;
  /** Sent after the warmup, before the GPU lock and the dump (e.g. vLLM's /sleep?level=1): what the server drops. */
  beforeSnapshot: RecordedRequest | null;
  /** Recorded in the image for restore to send in order after the restore, before ready (e.g. /wake_up). */
  afterRestore: RecordedRequest[];
  timeoutSeconds: number;
  /** How long locking CUDA may wait for in-flight GPU work. */
  lockTimeoutSeconds: number;
  /** Replace an earlier image at `output` (only an image). */
  force: boolean;
  cwd: string;
  env: Env;
  signal: AbortSignal;
  progress?: (line: string) => void;
  /** The step now under way (starting, dump, hash…), for a redrawn progress line; never printed by the engine. */
  step?: (text: string) => void;
}

/** What learnWorkingSet did: the report's `details.workingSet.learned`. */
export interface LearnedWorkingSet {
  /** Bytes of file pages the kernel was asked to page out, over every process of the tree. */
  pagedOutBytes: number;
  /** Page-out plus the second warmup request (null: no second request was sent). */
  seconds: number | null;
  /** The second warmup's answer was the first one's (answer.ts: ids and timestamps left out; null: not sent). */
  sameAnswer: boolean | null;
  /** Why it was not done, or not for every process (null: done). */
  error: string | null;
}

/**
 * Narrows the working set the image records to what the server touches to answer: every file page the tree has
 * present is paged out (process_madvise MADV_PAGEOUT: each clean page mapped by one process alone is unmapped, and
 * reclaimed where the kernel can — nothing is lost, a page is mapped again at its next touch), then the warmup is
 * sent again; the working set read just before the dump then holds the pages this answer, the --before-snapshot hook
 * and the GPU checkpoint touched, not the libraries' start-up code and the model loader's files (a page two
 * processes map stays mapped, and recorded). Why: the 8B test server had
 * 0.57 GB of its files' pages mapped at snapshot time and 0.08 GB after a restore and its first answer; a cold
 * restore reads every working-set byte beside the image stream, at the sum of the two times (H100 hosts,
 * 2026-12-06, bench/snapshot/working-set-gap.mjs). A restore that reads too few pages loses nothing: the server
 * faults the rest in, and restore keeps what it touched for the next restore (manifest.ts keepRestoredWorkingSet).
 * Failures (an old kernel, no CAP_SYS_NICE) are a note; the image then records every page the server had.
 */
async function learnWorkingSet(o: SnapshotOptions, engines: SnapshotEngines, rootPid: number, firstAnswer: NonNullable<Manifest['warmup']>, notes: string[]): Promise<LearnedWorkingSet> {
  const { host, native, clock } = engines;
  const took = stopwatch(clock);
  let pagedOutBytes = 0;
  let refusedBytes = 0;
  let error: string | null = null;
  o.step?.("paging out the server's file pages…");
  for (const pid of host.processTree(rootPid)) {
    const ranges = host.filePagesPresent(pid);
    // A process that ended since the tree was listed has nothing left to record: not an error.
    if (ranges === null && host.pidAlive(pid)) error ??= `/proc/${pid}/pagemap unreadable`;
    if (!ranges?.length) continue;
    try {
      const r = await native.pageOut(pid, ranges);
      pagedOutBytes += r.bytes;
      refusedBytes += r.skipped;
    } catch (e) {
      if (nativeCodeOf(e) !== 'NOT_FOUND') error ??= (e as Error).message;
    }
  }
  if (pagedOutBytes === 0) {
    error ??= refusedBytes ? `the kernel paged out none of ${formatBytes(refusedBytes)} of file pages (mlock'ed or huge-page mappings)` : null;
    notes.push(`the working set was not narrowed to what the server touches to answer (${error ?? 'no file page to page out'}): the image records every page of its files the server had, and a first restore reads them all`);
    return { pagedOutBytes, seconds: null, sameAnswer: null, error };
  }
  if (error) notes.push(`the working set was narrowed for only some processes of the server (${error}): the others' pages are all recorded`);
  o.step?.(`warmup request again, learning which pages the server needs to answer…`);
  const req = o.warmup!;
  const r = await sendRecorded(req, o.timeoutSeconds, o.signal);
  if (r.status >= 400) {
    throw new ColdstartError('BAD_RESPONSE', `snapshot: the warmup request ${req.method} ${req.url} answered HTTP ${r.status} when sent again (to learn the working set)`, {
      hint: `A server that answers a request only once: snapshot with --no-working-set-warmup. It answered: ${r.body.toString('utf8').slice(0, 300)}`,
    });
  }
  const same = sameAnswer(firstAnswer, answerDigests(r.body));
  if (!same) notes.push(`the server answered the warmup request differently when it was sent again: restore compares its first answer with the snapshot's and will find them different (a server that samples: seed it, or answer greedily)`);
  return { pagedOutBytes, seconds: took(), sameAnswer: same, error };
}

/** How long each process of the server gets between SIGTERM and SIGKILL when a failed snapshot stops it. */
export const STOP_GRACE_SECONDS = 5;

/** This machine's fingerprint: what an image must match to restore here (`gpuReading`: an NVML reading already made). */
export async function machineFingerprint(engines: SnapshotEngines, criuVersion: string, gpuReading?: GpuMemoryResult | null): Promise<Fingerprint> {
  return { arch: engines.host.arch(), kernel: engines.host.kernelRelease(), criu: criuVersion, gpu: await gpuFingerprint(engines.native, gpuReading) };
}

function diskFull(dir: string, free: number, need: number, what: string): ColdstartError {
  return new ColdstartError('DISK_FULL', `snapshot: ${dir} has ${formatBytes(free)} free, the image needs about ${formatBytes(need)} (${what})`, {
    hint: 'Free space there or choose another -o on a larger volume; nothing was written.',
    details: { freeBytes: free, estimateBytes: need },
  });
}

/** A hook request: sent once, its time returned; an error status or no answer fails the snapshot/restore (exit 3). */
export async function sendHook(req: RecordedRequest, flag: string, timeoutSeconds: number, signal: AbortSignal): Promise<{ seconds: number; status: number }> {
  const r = await sendRecorded(req, timeoutSeconds, signal);
  if (r.status >= 400) {
    const said = r.body.toString('utf8').slice(0, 200).trim();
    const known = hookRefusalHint(req.url, r.status);
    throw new ColdstartError('BAD_RESPONSE', `${flag}: ${req.method} ${req.url} answered HTTP ${r.status}`, { hint: [known, said ? `It answered: ${said}` : known ? null : 'Check the server log.'].filter(Boolean).join(' ') });
  }
  return { seconds: r.seconds, status: r.status };
}

/** vLLM's routes that exist only in its development mode (vllm/entrypoints/serve: register_vllm_dev_api_routers). */
const VLLM_DEV_ROUTES = ['/sleep', '/wake_up', '/is_sleeping', '/collective_rpc', '/reset_prefix_cache'];

/** What a hook's refusal means where an engine's docs or source say so; null: nothing known beyond its answer. */
export function hookRefusalHint(url: string, status: number): string | null {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return null;
  }
  if (status === 404 && VLLM_DEV_ROUTES.includes(path)) {
    return `A vLLM server has ${path} only when it runs with VLLM_SERVER_DEV_MODE=1 (its development routes)${path === '/sleep' || path === '/wake_up' ? ' and was started with --enable-sleep-mode' : ''}: start it so in the snapshot's command (\`VLLM_SERVER_DEV_MODE=1 vllm serve MODEL --enable-sleep-mode\`).`;
  }
  return null;
}

/** The server's memory right before its --before-snapshot hook: the tree's resident bytes and one NVML reading. */
interface BeforeHook {
  hostBytes: number;
  reading: GpuMemoryResult | null;
}

/** What the --before-snapshot hook released, host (the tree's resident + swapped bytes) and GPU (NVML, per process). */
export interface HookRelease {
  hostBytes: { before: number; after: number };
  /** null: not measured (no CUDA process, or NVML could not list every one of them before and after). */
  gpuBytes: { before: number; after: number } | null;
}

/** The hook's release, from the reading before it and the snapshot's own reading after it (the same processes). */
function hookRelease(before: BeforeHook, hostAfter: number, gpuPids: readonly number[], after: GpuMemoryResult | null | undefined): HookRelease {
  const gb = usedBytesSum(gpusUsed(before.reading, gpuPids));
  const ga = usedBytesSum(gpusUsed(after ?? null, gpuPids));
  return { hostBytes: { before: before.hostBytes, after: hostAfter }, gpuBytes: gb !== null && ga !== null ? { before: gb, after: ga } : null };
}

/**
 * The hook's release said in one line, and a warning when the server held a GiB or more and gave back under 1 % of it:
 * the request was answered, but what it was meant to drop stays in the image.
 */
export function hookReleaseText(r: HookRelease): { line: string; warning: string | null } {
  const part = (what: string, b: { before: number; after: number }) => `${formatBytes(Math.max(0, b.before - b.after))} of ${what} (${formatBytes(b.before)} → ${formatBytes(b.after)})`;
  const line = `--before-snapshot released ${[r.gpuBytes ? part('GPU memory', r.gpuBytes) : null, part('host memory', r.hostBytes)].filter(Boolean).join(' and ')}${r.gpuBytes ? '' : '; GPU memory not measured (no CUDA process NVML lists)'}`;
  const held = r.hostBytes.before + (r.gpuBytes?.before ?? 0);
  const gave = Math.max(0, r.hostBytes.before - r.hostBytes.after) + Math.max(0, r.gpuBytes ? r.gpuBytes.before - r.gpuBytes.after : 0);
  const warning =
    held >= 1 << 30 && gave < 0.01 * held
      ? `--before-snapshot was answered but the server released almost nothing (${formatBytes(gave)} of ${formatBytes(held)}): what it was meant to drop stays in the image. Some servers release only when started for it (SGLang's /release_memory_occupation with --enable-memory-saver).`
      : null;
  return { line, warning };
}

/**
 * When most of the image is GPU state and no --before-snapshot hook released any of it: the weights are likely in the
 * image, and a server that can release and read them back (a sleep level 2) restores several times faster without
 * them (H100, compiled 8B: 9.50 s → 1.64 s from the page cache).
 */
export function weightsHint(k: ImageKinds | null, total: number, beforeSnapshot: unknown): string | null {
  if (!k || beforeSnapshot || k.gpuStateBytes === null || total <= 0 || k.gpuStateBytes < 0.5 * total || k.gpuStateBytes < 1 << 30) return null;
  return `${formatBytes(k.gpuStateBytes)} of the image is GPU memory, the weights most of it: a server that can release its weights and read them back into the same addresses leaves them out (--before-snapshot URL to release, --after-restore URL to read back; restore --prefetch WEIGHTS reads them alongside: docs/snapshot.md)`;
}

/** A hook request as sent, and what it took. */
export interface SentHook {
  method: string;
  url: string;
  seconds: number;
}

/** Hook requests sent one after the other (each as sendHook); what each took, and the sum (null: none sent). */
export async function sendHooks(reqs: readonly RecordedRequest[], flag: string, timeoutSeconds: number, signal: AbortSignal): Promise<{ seconds: number | null; sent: SentHook[] }> {
  const sent: SentHook[] = [];
  for (const r of reqs) sent.push({ method: r.method, url: r.url, seconds: (await sendHook(r, flag, timeoutSeconds, signal)).seconds });
  return { seconds: sent.length ? sent.reduce((a, h) => a + h.seconds, 0) : null, sent };
}

/** The image by kind, one line each (what could not be told apart is "other"). */
export function kindLines(k: ImageKinds | null, total: number): string[] {
  if (!k) return ['image by kind: not measured'];
  const pct = (n: number) => (total > 0 ? ` (${Math.round((100 * n) / total)}%)` : '');
  const rows: Array<[string, number | null]> = [
    ['GPU state (CUDA checkpoint)', k.gpuStateBytes],
    ['anonymous memory (heap, stacks)', k.anonymousBytes],
    ['file-backed mappings', k.fileMappedBytes],
    ['shared memory', k.sharedBytes],
    ['files and process metadata', k.filesBytes],
    ['other (not classified)', k.otherBytes],
  ];
  return ['image by kind:', ...rows.filter(([, v]) => v !== null && v > 0).map(([n, v]) => `  ${n.padEnd(32)} ${formatBytes(v!).padStart(10)}${pct(v!)}`), ...k.notes.map((n) => `  note: ${n}`)];
}

/**
 * The environment the snapshotted server starts with. Inductor's parallel compile workers are forked helpers that
 * hold the GPU's device files without a CUDA context the driver can checkpoint, so CRIU cannot save them. Unless
 * the user chose a thread count, the server compiles in-process (TORCHINDUCTOR_COMPILE_THREADS=1): only the
 * snapshot run compiles (the restored server never does), and it is said in the report's notes when the server
 * has torch loaded.
 */
export function snapshotServerEnv(env: Env): { env: Env; note: string | null } {
  if (env.TORCHINDUCTOR_COMPILE_THREADS !== undefined) return { env, note: null };
  return {
    env: { ...env, TORCHINDUCTOR_COMPILE_THREADS: '1' },
    note: "TORCHINDUCTOR_COMPILE_THREADS=1 set for the server: torch Inductor compiles in-process, so no compile worker holds the GPU's device files CRIU cannot save (set the variable yourself to choose otherwise)",
  };
}

/** "16 processes (pids 800, 802, 804, … 830: python3 …/compile_worker/__main__.py)": grouped by command, short. */
export function describeHolders(holders: Array<{ pid: number; command: string }>): string {
  const groups = new Map<string, number[]>();
  for (const h of holders) {
    const words = h.command.split(' ').filter(Boolean);
    const short = words.slice(0, 2).map((w) => (w.length > 48 && w.includes('/') ? `…/${w.split('/').slice(-2).join('/')}` : w)).join(' ') || '?';
    groups.set(short, [...(groups.get(short) ?? []), h.pid]);
  }
  const pids = (list: number[]) => (list.length > 4 ? `${list.slice(0, 3).join(', ')}, … ${list[list.length - 1]}` : list.join(', '));
  const parts = [...groups].map(([cmd, list]) => `${list.length === 1 ? 'process' : `${list.length} processes`} (${list.length === 1 ? 'pid' : 'pids'} ${pids(list)}: ${cmd})`);
  return parts.join(' and ');
}

export async function takeSnapshot(o: SnapshotOptions, engines: SnapshotEngines): Promise<Reported> {
  const { host, native, clock } = engines;
  requireServerCommand('snapshot', o);
  // ---- refusals: nothing has been started or written yet
  const output = o.output;
  guardImageOutput(output, o.force);
  const logPath = serverLogPath(output);
  if (lstatOrNull(logPath)?.isSymbolicLink()) throw symlinkedLog(logPath);
  if (!host.isRoot()) throw new ColdstartError('PERMISSION', 'snapshot needs root: CRIU dumps processes through ptrace and /proc (run as root)');
  const permissions = host.tracerPermissions();
  refuseWhereCriuWouldBe('snapshot', permissions, permissionFixes(true, permissions), 'Nothing was started.');
  const criu = await engines.criu.require(o.env);
  await refuseReadyAlready(o.readyUrl, '--ready-url', o.signal);
  makeDirs(dirname(output));

  const tmp = tempPathFor(output);
  trackTemp(tmp);
  const phases: Record<string, number> = {};
  let server: ServerHandle | undefined;
  let gpuLocked: number[] = [];
  const notes: string[] = [];
  const { env: serverEnv, note: envNote } = snapshotServerEnv(o.env);
  try {
    const total = stopwatch(clock);
    const logFd = createServerLog(logPath);
    try {
      server = engines.server.start({ command: o.command, cwd: o.cwd, env: serverEnv, what: 'snapshot', stopGraceSeconds: STOP_GRACE_SECONDS, logFile: { fd: logFd, path: logPath } });
    } finally {
      closeSync(logFd);
    }
    o.step?.(`starting the server, waiting until ${o.readyUrl ? `${o.readyUrl} answers` : 'its output matches --ready-log'}…`);
    const ready = await server.waitReady({ url: o.readyUrl, log: o.readyLog, timeoutSeconds: o.timeoutSeconds, signal: o.signal, pollMs: 25 });
    const readySeconds = ready.seconds;
    o.progress?.(`snapshot: ready after ${formatDuration(readySeconds)}`);
    let warmup: Manifest['warmup'] = null;
    let warmupBody: Buffer | null = null;
    let firstRequestSeconds: number | null = null;
    if (o.warmup) {
      o.step?.(`warmup request ${o.warmup.method} ${o.warmup.url}…`);
      const r = await sendRecorded(o.warmup, o.timeoutSeconds, o.signal);
      firstRequestSeconds = r.seconds;
      if (r.status >= 400) throw new ColdstartError('BAD_RESPONSE', `snapshot: the warmup request ${o.warmup.method} ${o.warmup.url} answered HTTP ${r.status}`, { hint: r.body.toString('utf8').slice(0, 300) });
      warmup = { ...o.warmup, status: r.status, ...answerDigests(r.body) };
      warmupBody = r.body;
    } else notes.push('no --warmup request: the first request was not measured');
    // The server's own cold start, as wrap mode and optimize count it (spawn → ready, then the first request): not
    // coldstart's watchdog start-up before the spawn (0.2 s on the H100/H200 hosts), which a user's server never pays.
    const coldTotal = readySeconds + (firstRequestSeconds ?? 0);
    const olderAnswer = ready.olderAnswer(); // once the timed part is over
    if (olderAnswer) notes.push(olderAnswer);
    const learned = warmup && o.warmup && o.workingSetWarmup !== false ? await learnWorkingSet(o, engines, server.pid()!, warmup, notes) : null;
    if (learned?.seconds != null) phases['working-set-warmup'] = learned.seconds;
    let beforeSnapshot: Manifest['beforeSnapshot'] = null;
    let beforeHook: BeforeHook | null = null;
    if (o.beforeSnapshot) {
      beforeHook = { hostBytes: host.treeMemoryBytes(host.processTree(server.pid()!)), reading: await native.gpuMemory() };
      const r = await sendHook(o.beforeSnapshot, '--before-snapshot', o.timeoutSeconds, o.signal);
      phases['before-snapshot'] = r.seconds;
      beforeSnapshot = { ...o.beforeSnapshot, status: r.status, seconds: r.seconds };
    }

    const rootPid = server.pid()!;
    const pids = host.processTree(rootPid);
    // Said only where it mattered: a process of the tree has torch loaded.
    if (envNote && mapsFile(pids, '/libtorch')) notes.push(envNote);
    const ports = host.listeningPorts(pids);
    const gpu = await cudaProcesses(native, pids);
    const gpuPids = gpu.pids;
    if (gpu.note) notes.push(`GPU state not checked (CPU-only snapshot): ${gpu.note}`);
    // CRIU cannot save a GPU device file: every process holding one must be one the driver checkpoints (it then
    // closes them). Refused here, before anything is locked, instead of by CRIU after the GPU checkpoint.
    const stray = host.gpuDeviceHolders(pids).filter((h) => !gpuPids.includes(h.pid));
    if (stray.length) {
      throw new ColdstartError('ENV', `snapshot: ${describeHolders(stray)} of the server ${stray.length === 1 ? 'holds' : 'hold'} ${stray[0]!.devices[0]} open without a CUDA context the driver can checkpoint; CRIU cannot save device files`, {
        hint: `End such helpers before the snapshot (torch Inductor compile workers: leave TORCHINDUCTOR_COMPILE_THREADS unset or 1${o.env.TORCHINDUCTOR_COMPILE_THREADS ? `, not ${o.env.TORCHINDUCTOR_COMPILE_THREADS}` : ''}, or shut them down from a --before-snapshot hook), or make them hold a real CUDA context. Nothing was locked or dumped; the server was stopped.`,
        details: { pids: stray },
      });
    }
    const dir = dirname(output);
    const memBefore = host.treeMemoryBytes(pids);
    const free = host.diskFreeBytes(dir);
    if (free !== null && free < memBefore) throw diskFull(dir, free, memBefore, "the server's resident memory");
    // Which GPU each CUDA process holds memory on, read before the lock (after it, the memory has moved to the host):
    // restore pairs each with a GPU of the same model where the same one is absent (gpu-map.ts).
    const gpuReading = gpuPids.length ? await native.gpuMemory() : undefined;
    const gpuUsed = gpuReading === undefined ? null : gpusUsed(gpuReading, gpuPids);
    const released = beforeHook ? hookRelease(beforeHook, memBefore, gpuPids, gpuReading) : null;
    const releasedText = released ? hookReleaseText(released) : null;
    if (releasedText?.warning) notes.push(releasedText.warning);
    if (gpuPids.length && !gpuUsed) notes.push('which GPU each server process used was not measured (NVML listed no compute processes for them): a restore onto other GPUs pairs every GPU of this machine');
    // GPU: lock every CUDA process first (no new work), then move each one's GPU memory to host memory.
    if (gpuPids.length) o.step?.(`locking CUDA in ${gpuPids.length} process(es) (waits for in-flight GPU work)…`);
    const lockTime = stopwatch(clock);
    for (const pid of gpuPids) {
      await native.checkpoint(pid, 'lock', { timeoutMs: Math.round(o.lockTimeoutSeconds * 1000) });
      gpuLocked.push(pid);
    }
    if (gpuPids.length) phases['gpu-lock'] = lockTime();
    if (gpuPids.length) o.step?.('moving GPU memory into host memory…');
    const checkpointTime = stopwatch(clock);
    for (const pid of gpuPids) await native.checkpoint(pid, 'checkpoint');
    if (gpuPids.length) phases['gpu-checkpoint'] = checkpointTime();
    const memAfter = host.treeMemoryBytes(pids);
    const estimate = memAfter + 16 * 1024 * 1024;
    const free2 = host.diskFreeBytes(dir);
    if (free2 !== null && free2 < estimate) throw diskFull(dir, free2, estimate, 'resident memory with GPU memory moved to host');
    // Which pages of its libraries the server has mapped, for restore to read ahead on a cold node (working-set.ts):
    // read just before CRIU's dump, from /proc (tens of milliseconds for a torch server).
    const wsTime = stopwatch(clock);
    const workingSet = host.workingSet(pids);
    const workingSetSeconds = wsTime();
    if (!workingSet) notes.push("the server's working set of its files was not recorded (/proc/PID/pagemap unreadable): restore will not read its libraries ahead");
    else if (workingSet.leftOut) notes.push(`the server's working set leaves out ${workingSet.leftOut} of the files it maps (at most ${WORKING_SET_MAX_FILES} files and ${WORKING_SET_MAX_RANGES} ranges are recorded): restore does not read those ahead`);
    mkdirSync(tmp);
    o.step?.(`CRIU dump of ${pids.length} process(es), about ${formatBytes(estimate)}…`);
    const dumpTime = stopwatch(clock);
    // A failed dump keeps CRIU's log beside the image-to-be (IMAGE.dump.log): the temp dir is removed below.
    await engines.criu.dump(criu, rootPid, tmp, o.env, { keepLogAt: `${output}.dump.log` });
    phases['criu-dump'] = dumpTime();
    gpuLocked = [];
    // CRIU killed the tree; the watchdog reaps the server and reports. A killed descendant keeps its pid as a zombie
    // until it is reaped (by init once the watchdog is gone): wait for every pid to be free, so a restore can follow.
    await server.stop();
    await pollUntil(async () => (pids.some((p) => host.pidAlive(p)) ? undefined : true), { deadline: nowSeconds() + 10, delayMs: { first: 10, max: 100 }, onTimeout: () => new Error('pids still taken') }).catch(() => undefined);
    copyFileSync(logPath, join(tmp, LOG_COPY));
    if (warmupBody) writeFileSync(join(tmp, ANSWER_COPY), warmupBody);
    o.step?.('hashing the image files…');
    // Every byte hashed in 16 MiB chunks on worker threads, just after CRIU wrote it (it is still in the page cache).
    const hashTime = stopwatch(clock);
    const listed = listImageFiles(tmp);
    const digests = await hashFiles(
      listed.map((f) => join(tmp, f.name)),
      { signal: o.signal },
    );
    const files = listed.map((f, i) => ({ name: f.name, bytes: digests[i]!.bytes, sha256: digests[i]!.digest, chunks: digests[i]!.chunks }));
    phases['hash'] = hashTime();
    const imageBytes = files.reduce((a, f) => a + f.bytes, 0);
    let kinds: ImageKinds | null = null;
    try {
      kinds = imageKinds(tmp, files, gpuPids.length ? Math.max(0, memAfter - memBefore) : null);
      if (gpuPids.length) kinds.notes.push("GPU state: the server's resident memory growth across the CUDA checkpoint");
    } catch (e) {
      notes.push(`image by kind not measured: ${(e as Error).message}`);
    }
    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      createdAt: clock.date().toISOString(),
      tool: 'coldstart',
      command: o.command,
      cwd: o.cwd,
      log: logPath,
      readyUrl: o.readyUrl ?? null,
      warmup,
      rootPid,
      pids,
      gpuPids,
      gpuUsed,
      ports,
      fingerprint: await machineFingerprint(engines, criu.version, gpuReading),
      cold: { readySeconds, firstRequestSeconds, totalSeconds: coldTotal, notes },
      snapshotSeconds: phases,
      imageBytes,
      memoryEstimateBytes: estimate,
      hash: CHUNK_HASH,
      files,
      beforeSnapshot,
      afterRestore: o.afterRestore.length === 0 ? null : o.afterRestore.length === 1 ? o.afterRestore[0]! : o.afterRestore,
      kinds,
      workingSet,
    };
    writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    replaceImage(tmp, output, o.force);

    const report = newReport('snapshot');
    report.target = { image: output, command: o.command, pids, gpuPids, ports: ports.map((p) => `${p.address}:${p.port}`) };
    report.phases = [
      phase('ready', readySeconds, 'cold start: spawn → ready'),
      phase('first-request', firstRequestSeconds, undefined, firstRequestSeconds === null ? 'not measured: no --warmup request' : undefined),
      ...Object.entries(phases).map(([k, v]) => phase(k, v)),
    ];
    report.total = { seconds: total() };
    report.warnings.push(...notes);
    report.details = {
      image: output,
      imageBytes,
      files: files.length,
      fingerprint: manifest.fingerprint,
      cold: manifest.cold,
      snapshotSeconds: phases,
      hashBytesPerSecond: phases['hash']! > 0 ? imageBytes / phases['hash']! : null,
      kinds: kinds ?? 'not measured',
      beforeSnapshot,
      /** What the --before-snapshot hook released (null: no hook). */
      beforeSnapshotReleased: released,
      afterRestore: o.afterRestore,
      /** The pages of its files the server had mapped (restore reads them ahead); null: not recorded. */
      workingSet: workingSet ? { files: workingSet.files.length, bytes: workingSet.bytes, seconds: workingSetSeconds, learned } : null,
    };
    return {
      report,
      human: () =>
        [
          `snapshot of \`${o.command.join(' ')}\` → ${output} (${formatBytes(manifest.imageBytes)}, ${files.length} files)`,
          table(
            [
              ['ready (spawn → ready)', fmt(readySeconds), ''],
              ['first request', fmt(firstRequestSeconds), ''],
              ...Object.entries(phases).map(([k, v]) => [k, '', fmt(v)] as [string, string, string]),
            ],
            ['', 'cold start', 'snapshot'],
          ),
          ...kindLines(kinds, imageBytes),
          ...(releasedText ? [releasedText.line] : []),
          ...(workingSet ? [`the server's working set: ${formatBytes(workingSet.bytes)} of the pages of ${workingSet.files.length} file(s) it maps (libraries), which restore reads ahead${learned?.seconds != null ? ` (what it touched answering the warmup again after ${formatBytes(learned.pagedOutBytes)} of them were paged out)` : ''}`] : []),
          `restore with: coldstart restore ${output}  (add --huge-pages: CRIU and the GPU restore fill 2 MiB pages instead of 4 KiB, 1.6-2.1x faster at 8B; it sets THP to always for those seconds)`,
          ...[weightsHint(kinds, imageBytes, beforeSnapshot)].filter((line) => line !== null),
        ].join('\n'),
    };
  } catch (e) {
    // Give the GPU back to a process we locked/checkpointed, then stop everything we started (its whole tree).
    for (const pid of gpuLocked) {
      await native.checkpoint(pid, 'restore').catch(() => undefined);
      await native.checkpoint(pid, 'unlock').catch(() => undefined);
    }
    await server?.stop();
    removeTemp(tmp);
    throw e;
  }
}

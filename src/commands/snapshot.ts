/**
 * `coldstart snapshot` / `restore` / `park` / `unpark`: skip the cold start. snapshot starts a server, waits
 * until it is ready and warmed, checkpoints the CUDA state of every process of it that holds a context
 * (cuCheckpointProcessLock + Checkpoint: GPU memory to host memory), CRIU-dumps the process tree into an image
 * directory written atomically, with a manifest (machine fingerprint, files with sizes and hashes, ports,
 * the cold start measured on the way). restore refuses, before touching anything, an image from another
 * machine, a damaged image, ports or pids in use, too little memory; otherwise CRIU-restores, driver-restores
 * and unlocks each GPU process, waits until ready, sends the first request and reports restored vs cold.
 * park / unpark are the GPU-only half in place: free the GPU of a running process, and bring it back.
 */
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, constants, copyFileSync, lstatSync, mkdirSync, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync, fstatSync, type Stats } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { addReportOptions, emitOptions, type Context, type ReportFlags, type Runner } from '../cli/context.js';
import { ColdstartError, fromSystemError, invalidArg } from '../core/errors.js';
import { durationFlag } from '../core/flags.js';
import { readInputText } from '../core/files.js';
import { makeDirs, safeJoin } from '../core/paths.js';
import { Stopwatch, sleep } from '../core/clock.js';
import { tempPathFor, trackTemp, removeTemp, untrackTemp } from '../core/atomic.js';
import { emitReport } from '../core/emit.js';
import { newReport, type Report, type PhaseSummary } from '../core/report.js';
import { diskInfo } from '../platform/system.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { loadNative, type NativeAddon, type GpuMemoryResult } from '../native.js';
import {
  criuDump,
  criuRestore,
  hashFile,
  kernelRelease,
  listImageFiles,
  listeningPorts,
  memAvailableBytes,
  pidAlive,
  portInUse,
  processTree,
  requireCriu,
  treeMemoryBytes,
  type CriuInfo,
  type ImageFile,
  type ListeningPort,
} from '../snapshot/criu.js';

export const MANIFEST = 'manifest.json';
export const MANIFEST_SCHEMA = 'coldstart/snapshot-image@1';
const LOG_COPY = 'server.log';

// ---------------------------------------------------------------------------------------------- manifest

export interface Fingerprint {
  arch: string;
  kernel: string;
  criu: string;
  /** null: no CUDA driver on the snapshot machine (a CPU-only image). */
  gpu: null | { driver: string | null; cuda: number | null; devices: Array<{ index: number; name: string; uuid: string }> };
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  createdAt: string;
  tool: string;
  command: string[];
  cwd: string;
  /** Server stdout/stderr; put back from the image's copy before restoring (CRIU reopens it by path). */
  log: string | null;
  readyUrl: string | null;
  warmup: null | { url: string; method: 'GET' | 'POST'; body: string | null; status: number; bodySha256: string };
  rootPid: number;
  pids: number[];
  /** Pids that held a CUDA context and were checkpointed before the dump. */
  gpuPids: number[];
  ports: ListeningPort[];
  fingerprint: Fingerprint;
  /** The cold start measured while taking the snapshot, seconds (null: not measured, see `coldNotes`). */
  cold: { readySeconds: number; firstRequestSeconds: number | null; totalSeconds: number; notes: string[] };
  snapshotSeconds: Record<string, number>;
  imageBytes: number;
  memoryEstimateBytes: number;
  files: ImageFile[];
}

function fingerprintDiff(a: Fingerprint, b: Fingerprint): string[] {
  const out: string[] = [];
  if (a.arch !== b.arch) out.push(`architecture ${a.arch} here, ${b.arch} in the image`);
  if (a.kernel !== b.kernel) out.push(`kernel ${a.kernel} here, ${b.kernel} in the image`);
  if (a.criu.split('.').slice(0, 2).join('.') !== b.criu.split('.').slice(0, 2).join('.')) out.push(`CRIU ${a.criu} here, ${b.criu} in the image`);
  if (b.gpu) {
    if (!a.gpu) out.push('the image holds GPU state but this machine has no CUDA driver');
    else {
      if (a.gpu.driver !== b.gpu.driver) out.push(`NVIDIA driver ${a.gpu.driver ?? 'unknown'} here, ${b.gpu.driver ?? 'unknown'} in the image`);
      const names = (f: Fingerprint) => f.gpu!.devices.map((d) => d.name).join(', ');
      if (names(a) !== names(b)) out.push(`GPUs [${names(a)}] here, [${names(b)}] in the image`);
    }
  }
  return out;
}

async function machineFingerprint(criu: CriuInfo, native: NativeAddon | null): Promise<Fingerprint> {
  let gpu: Fingerprint['gpu'] = null;
  if (native) {
    const mem = await native.gpuMemory().catch(() => null);
    if (mem?.available && mem.devices.length) {
      const probe = await native.cudaProbe({ context: false }).catch(() => null);
      gpu = { driver: mem.driverVersion ?? null, cuda: probe?.driverVersion ?? null, devices: mem.devices.map((d) => ({ index: d.index, name: d.name, uuid: d.uuid })) };
    }
  }
  return { arch: process.arch, kernel: kernelRelease(), criu: criu.version, gpu };
}

// ---------------------------------------------------------------------------------------------- helpers

/** --timeout / --lock-timeout: seconds (`30`) or a duration (`30s`, `5m`), the one parser in core/flags.ts. */
function parseSeconds(flag: string, v: string): number {
  return durationFlag(flag, v, { bareSeconds: true });
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

async function httpReady(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000), headers: { connection: 'close' } });
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}

interface WarmupRequest {
  url: string;
  method: 'GET' | 'POST';
  body: string | null;
}

async function sendRequest(w: WarmupRequest, timeoutMs: number): Promise<{ seconds: number; status: number; body: Buffer }> {
  const sw = new Stopwatch();
  const r = await fetch(w.url, {
    method: w.method,
    headers: { connection: 'close', ...(w.body !== null ? { 'content-type': 'application/json' } : {}) },
    body: w.body ?? undefined,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = Buffer.from(await r.arrayBuffer());
  return { seconds: sw.elapsed(), status: r.status, body };
}

function readTail(path: string, max = 4096): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const n = Math.min(size, max);
      const b = Buffer.alloc(n);
      readSync(fd, b, 0, n, size - n);
      return b.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** stat/lstat of a path that may be absent: null then; other failures (ENOTDIR, ELOOP, EACCES) as ColdstartErrors. */
function statOrNull(path: string, link = false): Stats | null {
  try {
    return (link ? lstatSync : statSync)(path, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    throw fromSystemError(e, path, 'look at');
  }
}
const lstatOrNull = (path: string) => statOrNull(path, true);

/** An http(s) URL given on the command line, else BAD_FLAG (exit 2). */
function httpUrlFlag(flag: string, v: string): string {
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    /* below */
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) throw invalidArg(flag, 'an http:// or https:// URL', v);
  return v;
}

/** Where the server's stdout/stderr go: IMAGE.log beside the image, for snapshot and for restore alike. */
function serverLogPath(image: string): string {
  return `${image}.log`;
}

function symlinkedLog(path: string): ColdstartError {
  return new ColdstartError('BAD_INPUT', `${path}: a symbolic link; snapshot writes the server's log there and does not follow links`, { hint: 'Remove the link or choose another -o (nothing was touched).' });
}

/** Creates (truncates) the server's log for writing; a symbolic link there is refused, never followed. */
function createServerLog(path: string): number {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw symlinkedLog(path);
    // Its folder exists (made above), yet the file cannot be: procfs/sysfs refuse new files with ENOENT.
    if (code === 'ENOENT') throw new ColdstartError('PERMISSION', `${path}: cannot be created: its folder refuses new files`, { cause: e, hint: 'Write the image to a folder on a real filesystem (-o).' });
    throw fromSystemError(e, path, "create the server's log");
  }
}

/**
 * `--force` replaces only an image: `output` must be a directory (not a link) holding a coldstart image manifest,
 * else OUTPUT_EXISTS — snapshot never removes a folder it did not write.
 */
function checkReplaceableImage(output: string): void {
  const refuse = (why: string) =>
    new ColdstartError('OUTPUT_EXISTS', `${output}: ${why}; --force only replaces an image written by \`coldstart snapshot\``, { hint: 'Choose another -o (nothing was touched).' });
  const st = lstatOrNull(output);
  if (!st) return;
  if (!st.isDirectory()) throw refuse(st.isSymbolicLink() ? 'is a symbolic link' : 'is not a directory');
  let schema: unknown;
  try {
    schema = (JSON.parse(readInputText(join(output, MANIFEST), 'image manifest', MANIFEST_MAX_BYTES)) as { schema?: unknown } | null)?.schema;
  } catch {
    schema = undefined;
  }
  if (schema !== MANIFEST_SCHEMA) throw refuse(`holds no ${MANIFEST_SCHEMA} manifest`);
}

/** Puts the finished image `tmp` at `output`, replacing an earlier image there (checked again, moved aside, removed). */
function replaceImage(tmp: string, output: string): void {
  if (!lstatOrNull(output)) {
    renameSync(tmp, output);
    untrackTemp(tmp);
    return;
  }
  checkReplaceableImage(output);
  const old = tempPathFor(output);
  trackTemp(old);
  renameSync(output, old);
  renameSync(tmp, output);
  untrackTemp(tmp);
  removeTemp(old);
}

/**
 * The image's copy of the server's log put back at `dst` (IMAGE.log: a temp copy renamed into place, so a link
 * there is replaced, not followed), opened for appending; the caller closes the descriptor.
 */
function putLogBack(src: string, dst: string): number {
  const t = tempPathFor(dst);
  trackTemp(t);
  try {
    copyFileSync(src, t, constants.COPYFILE_EXCL);
    renameSync(t, dst);
    untrackTemp(t);
    return openSync(dst, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW);
  } catch (e) {
    removeTemp(t);
    throw fromSystemError(e, dst, "put the server's log back");
  }
}

/** Waits for the ready URL (2xx) or a log line; fails early when the server exits. */
async function waitReady(o: { readyUrl?: string; readyLog?: RegExp; log: string; child?: ChildProcess; pid: number; timeoutS: number; signal: AbortSignal }): Promise<number> {
  const sw = new Stopwatch();
  let exited: number | null | undefined;
  o.child?.once('exit', (code) => (exited = code));
  while (sw.elapsed() < o.timeoutS) {
    if (o.signal.aborted) throw new ColdstartError('INTERRUPTED', 'interrupted while waiting for the server');
    if (exited !== undefined || (!o.child && !pidAlive(o.pid))) {
      throw new ColdstartError('ENV', `the server exited (code ${exited ?? 'unknown'}) before it was ready`, { hint: `Its output: ${o.log}\n${readTail(o.log, 1500)}` });
    }
    if (o.readyUrl && (await httpReady(o.readyUrl))) return sw.elapsed();
    if (o.readyLog && o.readyLog.test(readTail(o.log, 1 << 16))) return sw.elapsed();
    await sleep(25);
  }
  throw new ColdstartError('TIMEOUT', `the server was not ready within ${o.timeoutS} s`, { hint: `Raise --timeout, or check --ready-url/--ready-log. Its output: ${o.log}` });
}

function killTree(pids: readonly number[]): void {
  for (const p of [...pids].reverse()) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** Every process of the tree that holds a CUDA context (cuCheckpointProcessGetState answers `running`). */
async function cudaProcesses(native: NativeAddon | null, pids: readonly number[]): Promise<{ pids: number[]; note?: string }> {
  if (!native) return { pids: [], note: 'native addon unavailable: GPU state not checked' };
  const out: number[] = [];
  for (const pid of pids) {
    try {
      const s = await native.cudaCheckpoint({ pid, action: 'state' });
      if (s.state === 'running') out.push(pid);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'NO_DRIVER' || code === 'NO_CHECKPOINT_API') return { pids: [], note: (e as Error).message };
      // Any other answer (e.g. CUDA_ERROR_NOT_INITIALIZED / NOT_FOUND): this process holds no context.
    }
  }
  return { pids: out };
}

function nativeOrNull(): NativeAddon | null {
  const n = loadNative();
  return n.ok ? n.addon : null;
}

function phase(name: string, seconds: number | null, note?: string, reason?: string): PhaseSummary {
  return {
    name,
    status: seconds === null ? 'skipped' : 'ok',
    seconds,
    ...(reason ? { reason } : {}),
    ...(note ? { note } : {}),
    steps: [],
    metrics: {},
    share: null,
  };
}

const fmt = (s: number | null | undefined) => (s === null || s === undefined ? '—' : formatDuration(s));

function table(rows: Array<[string, string, string]>, head: [string, string, string]): string {
  const all = [head, ...rows];
  const w = [0, 1, 2].map((i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => `  ${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padStart(w[2]!)}`).join('\n');
}

// ---------------------------------------------------------------------------------------------- snapshot

interface SnapshotFlags extends ReportFlags {
  output: string;
  readyUrl?: string;
  readyLog?: string;
  warmup?: string;
  warmupData?: string;
  timeout: string;
  lockTimeout: string;
  force?: boolean;
}

async function snapshot(ctx: Context, command: string[], flags: SnapshotFlags): Promise<number> {
  if (!command.length) throw new ColdstartError('USAGE', 'snapshot: no server command', { hint: 'Usage: coldstart snapshot -o IMAGE --ready-url URL -- <server command>' });
  if (!flags.readyUrl && !flags.readyLog) throw new ColdstartError('USAGE', 'snapshot: give --ready-url or --ready-log so coldstart knows when the server is ready');
  const timeoutS = parseSeconds('--timeout', flags.timeout);
  const lockTimeoutS = parseSeconds('--lock-timeout', flags.lockTimeout);
  let readyLog: RegExp | undefined;
  if (flags.readyLog) {
    try {
      readyLog = new RegExp(flags.readyLog);
    } catch {
      throw invalidArg('--ready-log', 'a regular expression', flags.readyLog);
    }
  }
  if (flags.readyUrl) httpUrlFlag('--ready-url', flags.readyUrl);
  const warm: WarmupRequest | null = flags.warmup ? { url: httpUrlFlag('--warmup', flags.warmup), method: flags.warmupData ? 'POST' : 'GET', body: flags.warmupData ?? null } : null;
  const output = resolve(ctx.cwd, flags.output);
  if (lstatOrNull(output)) {
    if (!flags.force) throw new ColdstartError('OUTPUT_EXISTS', `${output}: already exists`, { hint: 'Pass --force to replace it, or choose another -o.' });
    checkReplaceableImage(output);
  }
  const logPath = serverLogPath(output);
  if (lstatOrNull(logPath)?.isSymbolicLink()) throw symlinkedLog(logPath);
  if (process.getuid?.() !== 0) throw new ColdstartError('PERMISSION', 'snapshot needs root: CRIU dumps processes through ptrace and /proc (run as root)');
  const criu = await requireCriu(ctx.env);
  const native = nativeOrNull();
  makeDirs(dirname(output));

  const tmp = tempPathFor(output);
  trackTemp(tmp);
  const phases: Record<string, number> = {};
  let child: ChildProcess | undefined;
  let pids: number[] = [];
  let gpuPids: number[] = [];
  let gpuLocked: number[] = [];
  const notes: string[] = [];
  let onExit: (() => void) | undefined;
  try {
    const total = new Stopwatch();
    const logFd = createServerLog(logPath);
    try {
      child = spawn(command[0]!, command.slice(1), { cwd: ctx.cwd, env: ctx.env as NodeJS.ProcessEnv, stdio: ['ignore', logFd, logFd], detached: true });
    } finally {
      closeSync(logFd);
    }
    const spawnError = new Promise<never>((_, rej) => child!.once('error', (e) => rej(new ColdstartError('NOT_FOUND', `snapshot: cannot start ${command[0]}: ${e.message}`))));
    spawnError.catch(() => undefined);
    const rootPid = child.pid;
    // Interrupted (SIGINT/SIGTERM end the CLI with process.exit): never leave the detached server behind.
    const started = child;
    onExit = () => killTree(pids.length ? pids : started.pid !== undefined ? [started.pid] : []);
    process.once('exit', onExit);
    if (rootPid === undefined) await spawnError;
    const readySeconds = await Promise.race([waitReady({ readyUrl: flags.readyUrl, readyLog, log: logPath, child, pid: rootPid!, timeoutS, signal: ctx.signal }), spawnError]);
    ctx.out.progressLine(`snapshot: ready after ${formatDuration(readySeconds)}`);
    let warmup: Manifest['warmup'] = null;
    let firstRequestSeconds: number | null = null;
    if (warm) {
      const r = await sendRequest(warm, timeoutS * 1000);
      firstRequestSeconds = r.seconds;
      if (r.status >= 400) throw new ColdstartError('BAD_RESPONSE', `snapshot: the warmup request ${warm.method} ${warm.url} answered HTTP ${r.status}`, { hint: r.body.toString('utf8').slice(0, 300) });
      warmup = { ...warm, status: r.status, bodySha256: sha256(r.body) };
    } else notes.push('no --warmup request: the first request was not measured');
    const coldTotal = total.elapsed();

    pids = processTree(rootPid!);
    const ports = listeningPorts(pids);
    const gpu = await cudaProcesses(native, pids);
    gpuPids = gpu.pids;
    if (gpu.note) notes.push(`GPU state not checked (CPU-only snapshot): ${gpu.note}`);
    const memBefore = treeMemoryBytes(pids);
    const disk = diskInfo(dirname(output));
    if (disk.freeBytes !== null && disk.freeBytes < memBefore) {
      throw new ColdstartError('DISK_FULL', `snapshot: ${dirname(output)} has ${formatBytes(disk.freeBytes)} free, the image needs about ${formatBytes(memBefore)} (the server's resident memory)`, {
        hint: 'Free space there or choose another -o on a larger volume; nothing was written.',
        details: { freeBytes: disk.freeBytes, estimateBytes: memBefore },
      });
    }
    // GPU: lock every CUDA process first (no new work), then move each one's GPU memory to host memory.
    const gsw = new Stopwatch();
    for (const pid of gpuPids) {
      await native!.cudaCheckpoint({ pid, action: 'lock', timeoutMs: Math.round(lockTimeoutS * 1000) });
      gpuLocked.push(pid);
    }
    if (gpuPids.length) phases['gpu-lock'] = gsw.elapsed();
    const csw = new Stopwatch();
    for (const pid of gpuPids) await native!.cudaCheckpoint({ pid, action: 'checkpoint' });
    if (gpuPids.length) phases['gpu-checkpoint'] = csw.elapsed();
    const estimate = treeMemoryBytes(pids) + 16 * 1024 * 1024;
    const disk2 = diskInfo(dirname(output));
    if (disk2.freeBytes !== null && disk2.freeBytes < estimate) {
      throw new ColdstartError('DISK_FULL', `snapshot: ${dirname(output)} has ${formatBytes(disk2.freeBytes)} free, the image needs about ${formatBytes(estimate)} (resident memory with GPU memory moved to host)`, {
        hint: 'Free space there or choose another -o on a larger volume; nothing was written.',
        details: { freeBytes: disk2.freeBytes, estimateBytes: estimate },
      });
    }
    mkdirSync(tmp);
    const dsw = new Stopwatch();
    // A failed dump keeps CRIU's log beside the image-to-be (IMAGE.dump.log): the temp dir is removed below.
    await criuDump(criu, rootPid!, tmp, ctx.env, { keepLogAt: `${output}.dump.log` });
    phases['criu-dump'] = dsw.elapsed();
    gpuLocked = [];
    // CRIU killed the tree; reap our child so its pid is free for a restore.
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child!.once('exit', r));
    copyFileSync(logPath, join(tmp, LOG_COPY));
    const hsw = new Stopwatch();
    const files = listImageFiles(tmp);
    phases['hash'] = hsw.elapsed();
    const manifest: Manifest = {
      schema: MANIFEST_SCHEMA,
      createdAt: new Date().toISOString(),
      tool: 'coldstart',
      command,
      cwd: ctx.cwd,
      log: logPath,
      readyUrl: flags.readyUrl ?? null,
      warmup,
      rootPid: rootPid!,
      pids,
      gpuPids,
      ports,
      fingerprint: await machineFingerprint(criu, native),
      cold: { readySeconds, firstRequestSeconds, totalSeconds: coldTotal, notes },
      snapshotSeconds: phases,
      imageBytes: files.reduce((a, f) => a + f.bytes, 0),
      memoryEstimateBytes: estimate,
      files,
    };
    writeFileSync(join(tmp, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    replaceImage(tmp, output);
    if (onExit) process.off('exit', onExit);

    const report = newReport('snapshot');
    report.target = { image: output, command, pids, gpuPids, ports: ports.map((p) => `${p.address}:${p.port}`) };
    report.phases = [
      phase('ready', readySeconds, 'cold start: spawn → ready'),
      phase('first-request', firstRequestSeconds, undefined, firstRequestSeconds === null ? 'not measured: no --warmup request' : undefined),
      ...Object.entries(phases).map(([k, v]) => phase(k, v)),
    ];
    report.total = { seconds: total.elapsed() };
    report.warnings.push(...notes);
    report.details = { image: output, imageBytes: manifest.imageBytes, files: files.length, fingerprint: manifest.fingerprint, cold: manifest.cold, snapshotSeconds: phases };
    return emitReport(ctx.out, report, ctx.cwd, {
      ...emitOptions(ctx, flags),
      human: () =>
        [
          `snapshot of \`${command.join(' ')}\` → ${output} (${formatBytes(manifest.imageBytes)}, ${files.length} files)`,
          table(
            [
              ['ready (spawn → ready)', fmt(readySeconds), ''],
              ['first request', fmt(firstRequestSeconds), ''],
              ...Object.entries(phases).map(([k, v]) => [k, '', fmt(v)] as [string, string, string]),
            ],
            ['', 'cold start', 'snapshot'],
          ),
          `restore with: coldstart restore ${output}`,
        ].join('\n'),
    });
  } catch (e) {
    // Give the GPU back to a process we locked/checkpointed, then stop everything we started.
    for (const pid of gpuLocked) {
      await native?.cudaCheckpoint({ pid, action: 'restore' }).catch(() => undefined);
      await native?.cudaCheckpoint({ pid, action: 'unlock' }).catch(() => undefined);
    }
    if (child?.pid !== undefined) killTree(pids.length ? pids : [child.pid]);
    if (onExit) process.off('exit', onExit);
    removeTemp(tmp);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------- restore

/** The most a manifest may be (a few KiB in practice: one line per image file); past it, it is refused unread. */
const MANIFEST_MAX_BYTES = 16 << 20;
/** Linux's PID_MAX_LIMIT: no pid is larger. */
const PID_MAX = 1 << 22;

function shown(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'nothing' : Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/**
 * Field checks for one manifest: each throws CORRUPT_FILE (exit 2) naming the manifest and the field
 * (`…/manifest.json: pids[2]: expected a process id (1 to 4194304), got -1`).
 */
function manifestFields(path: string) {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new ColdstartError('CORRUPT_FILE', `${path}: ${field}: expected ${expected}, got ${shown(got)}`, { hint: 'Take the snapshot again with this version of coldstart; nothing was touched.', details: { field } });
  };
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const f = {
    fail,
    obj: (v: unknown, field: string): Record<string, unknown> => (isObj(v) ? v : fail(field, 'an object', v)),
    arr: (v: unknown, field: string, min = 0): unknown[] => (Array.isArray(v) && v.length >= min ? v : fail(field, min ? `an array of at least ${min}` : 'an array', v)),
    str: (v: unknown, field: string): string => (typeof v === 'string' && !v.includes('\0') ? v : fail(field, 'a string', v)),
    strOrNull: (v: unknown, field: string): string | null => (v === null ? null : f.str(v, field)),
    int: (v: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number =>
      Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max ? (v as number) : fail(field, `a whole number from ${min} to ${max}`, v),
    seconds: (v: unknown, field: string): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fail(field, 'a number of seconds ≥ 0', v)),
    pid: (v: unknown, field: string): number => (Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= PID_MAX ? (v as number) : fail(field, `a process id (1 to ${PID_MAX})`, v)),
    oneOf: <T extends string | number>(v: unknown, field: string, values: readonly T[]): T => (values.includes(v as T) ? (v as T) : fail(field, `one of ${values.join(', ')}`, v)),
    url: (v: unknown, field: string): string => {
      const s = f.str(v, field);
      let u: URL | undefined;
      try {
        u = new URL(s);
      } catch {
        /* below */
      }
      return u && (u.protocol === 'http:' || u.protocol === 'https:') ? s : fail(field, 'an http:// or https:// URL', v);
    },
    sha256: (v: unknown, field: string): string => (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? v : fail(field, 'a sha256 (64 lowercase hex digits)', v)),
  };
  return f;
}

/**
 * The one check of a manifest read from an image, before anything is done with it: every field's type and range
 * (CORRUPT_FILE), every file name a plain file of the image folder itself (safeJoin, no `/`: HOSTILE_FILE), the
 * server's log path absolute and normal (it is only ever CRIU's name for that file, never opened: HOSTILE_FILE
 * otherwise), pids whole and in range, the GPU pids and port owners among them, ports and addresses real.
 */
export function validateManifest(raw: unknown, path: string, image: string): Manifest {
  const f = manifestFields(path);
  const m = f.obj(raw, 'the manifest');
  if (m.schema !== MANIFEST_SCHEMA) {
    throw new ColdstartError('CORRUPT_FILE', `${path}: not a ${MANIFEST_SCHEMA} manifest (schema ${shown(m.schema)})`, { hint: 'Take the snapshot again with this version of coldstart.' });
  }
  f.str(m.createdAt, 'createdAt');
  f.str(m.tool, 'tool');
  f.arr(m.command, 'command', 1).forEach((a, i) => f.str(a, `command[${i}]`));
  f.str(m.cwd, 'cwd');
  if (m.log !== null) {
    const log = f.str(m.log, 'log');
    if (!isAbsolute(log) || normalize(log) !== log || log.endsWith('/')) {
      throw new ColdstartError('HOSTILE_FILE', `${path}: log: refused ${shown(log)}: the server's log path must be absolute and normal (no ".." or empty components)`, {
        hint: 'An image written by `coldstart snapshot` records the absolute path of its log; nothing was touched.',
        details: { field: 'log' },
      });
    }
  }
  if (m.readyUrl !== null) f.url(m.readyUrl, 'readyUrl');
  if (m.warmup !== null) {
    const w = f.obj(m.warmup, 'warmup');
    f.url(w.url, 'warmup.url');
    f.oneOf(w.method, 'warmup.method', ['GET', 'POST'] as const);
    f.strOrNull(w.body, 'warmup.body');
    f.int(w.status, 'warmup.status', 100, 599);
    f.sha256(w.bodySha256, 'warmup.bodySha256');
  }
  const rootPid = f.pid(m.rootPid, 'rootPid');
  const pids = f.arr(m.pids, 'pids', 1).map((p, i) => f.pid(p, `pids[${i}]`));
  if (new Set(pids).size !== pids.length) f.fail('pids', 'distinct process ids', m.pids);
  if (!pids.includes(rootPid)) f.fail('pids', `a list holding rootPid ${rootPid}`, m.pids);
  f.arr(m.gpuPids, 'gpuPids').forEach((p, i) => {
    if (!pids.includes(f.pid(p, `gpuPids[${i}]`))) f.fail(`gpuPids[${i}]`, 'one of pids', p);
  });
  f.arr(m.ports, 'ports').forEach((p, i) => {
    const o = f.obj(p, `ports[${i}]`);
    f.int(o.port, `ports[${i}].port`, 1, 65535);
    const family = f.oneOf(o.family, `ports[${i}].family`, [4, 6] as const);
    if (isIP(f.str(o.address, `ports[${i}].address`)) !== family) f.fail(`ports[${i}].address`, `an IPv${family} address`, o.address);
    if (!pids.includes(f.pid(o.pid, `ports[${i}].pid`))) f.fail(`ports[${i}].pid`, 'one of pids', o.pid);
  });
  const fp = f.obj(m.fingerprint, 'fingerprint');
  for (const k of ['arch', 'kernel', 'criu'] as const) f.str(fp[k], `fingerprint.${k}`);
  if (fp.gpu !== null) {
    const g = f.obj(fp.gpu, 'fingerprint.gpu');
    f.strOrNull(g.driver, 'fingerprint.gpu.driver');
    if (g.cuda !== null) f.int(g.cuda, 'fingerprint.gpu.cuda', 0);
    f.arr(g.devices, 'fingerprint.gpu.devices').forEach((d, i) => {
      const o = f.obj(d, `fingerprint.gpu.devices[${i}]`);
      f.int(o.index, `fingerprint.gpu.devices[${i}].index`, 0, 1023);
      f.str(o.name, `fingerprint.gpu.devices[${i}].name`);
      f.str(o.uuid, `fingerprint.gpu.devices[${i}].uuid`);
    });
  }
  const cold = f.obj(m.cold, 'cold');
  f.seconds(cold.readySeconds, 'cold.readySeconds');
  if (cold.firstRequestSeconds !== null) f.seconds(cold.firstRequestSeconds, 'cold.firstRequestSeconds');
  f.seconds(cold.totalSeconds, 'cold.totalSeconds');
  f.arr(cold.notes, 'cold.notes').forEach((n, i) => f.str(n, `cold.notes[${i}]`));
  for (const [k, v] of Object.entries(f.obj(m.snapshotSeconds, 'snapshotSeconds'))) f.seconds(v, `snapshotSeconds.${k}`);
  f.int(m.memoryEstimateBytes, 'memoryEstimateBytes', 0);
  const names = new Set<string>();
  let sum = 0;
  f.arr(m.files, 'files', 1).forEach((e, i) => {
    const o = f.obj(e, `files[${i}]`);
    const name = f.str(o.name, `files[${i}].name`);
    imageFile(image, name, `${path}: files[${i}].name`);
    if (names.has(name)) f.fail(`files[${i}].name`, 'a name listed once', name);
    names.add(name);
    sum += f.int(o.bytes, `files[${i}].bytes`, 0);
    f.sha256(o.sha256, `files[${i}].sha256`);
    if (typeof o.sampled !== 'boolean') f.fail(`files[${i}].sampled`, 'true or false', o.sampled);
  });
  if (m.log !== null && !names.has(LOG_COPY)) f.fail('files', `a list holding ${LOG_COPY} (the server's log)`, m.files);
  if (f.int(m.imageBytes, 'imageBytes', 0) !== sum) f.fail('imageBytes', `the sum of files[].bytes (${sum})`, m.imageBytes);
  return m as unknown as Manifest;
}

/**
 * `image/name` for a file name from the manifest: a plain file of the image folder itself (safeJoin's rule, and no
 * `/`: CRIU's images are flat, and a subfolder could be a link out of it), else HOSTILE_FILE.
 */
function imageFile(image: string, name: string, what: string): string {
  const p = safeJoin(image, name, what);
  if (name.includes('/')) {
    throw new ColdstartError('HOSTILE_FILE', `${what}: refused the name ${shown(name)}: an image holds files only at its top level`, { hint: 'Take the snapshot again; nothing was touched.' });
  }
  return p;
}

/** Reads and validates `image/manifest.json` (the one untrusted-file reader: regular file only, size-capped). */
export function readManifest(image: string): Manifest {
  const st = statOrNull(image);
  if (!st) throw new ColdstartError('NOT_FOUND', `${image}: no such image directory`, { hint: 'Give a directory written by `coldstart snapshot`.' });
  if (!st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${image}: not a directory; an image is the directory \`coldstart snapshot -o\` wrote`);
  const path = join(image, MANIFEST);
  let text: string;
  try {
    text = readInputText(path, 'image manifest', MANIFEST_MAX_BYTES);
  } catch (e) {
    if (e instanceof ColdstartError && e.code === 'NOT_FOUND') {
      throw new ColdstartError('CORRUPT_FILE', `${image}: has no manifest.json`, { hint: 'Give a directory written by `coldstart snapshot` (a failed or interrupted snapshot leaves none).' });
    }
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ColdstartError('CORRUPT_FILE', `${path}: not JSON (${(e as Error).message})`, { hint: 'Take the snapshot again; nothing was touched.' });
  }
  return validateManifest(raw, path, image);
}

/**
 * Sizes and hashes of every file the manifest lists (names already validated); each must be a regular file of the
 * image folder itself — a symbolic link or special file there is refused (HOSTILE_FILE) before it is opened.
 */
export function verifyImage(image: string, m: Manifest): string[] {
  const bad: string[] = [];
  for (const f of m.files) {
    const p = imageFile(image, f.name, `${image}: manifest files[].name`);
    const st = lstatOrNull(p);
    if (!st) {
      bad.push(`${f.name} is missing`);
      continue;
    }
    if (!st.isFile()) {
      throw new ColdstartError('HOSTILE_FILE', `${p}: ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'} in the image; an image holds only regular files`, { hint: 'Take the snapshot again; nothing was touched.' });
    }
    if (st.size !== f.bytes) {
      bad.push(`${f.name} is ${st.size} bytes, the manifest says ${f.bytes}`);
      continue;
    }
    const h = hashFile(p);
    if (h.sha256 !== f.sha256) bad.push(`${f.name} has sha256 ${h.sha256.slice(0, 12)}…, the manifest says ${f.sha256.slice(0, 12)}…`);
  }
  return bad;
}

interface RestoreFlags extends ReportFlags {
  timeout: string;
  readyUrl?: string;
  firstRequest: boolean;
}

async function restore(ctx: Context, imageArg: string, flags: RestoreFlags): Promise<number> {
  const image = resolve(ctx.cwd, imageArg);
  const timeoutS = parseSeconds('--timeout', flags.timeout);
  if (flags.readyUrl) httpUrlFlag('--ready-url', flags.readyUrl);
  // ---- refusals: nothing has been touched yet; the manifest is validated whole before any of it is used
  const m = readManifest(image);
  const criu = await requireCriu(ctx.env);
  const native = nativeOrNull();
  const here = await machineFingerprint(criu, native);
  const diff = fingerprintDiff(here, m.fingerprint);
  if (diff.length) {
    throw new ColdstartError('UNSUPPORTED', `${image}: taken on a different machine: ${diff.join('; ')}`, {
      hint: 'A process image only restores where the kernel, CRIU and GPU driver match; take the snapshot on this machine.',
      details: { here, image: m.fingerprint },
    });
  }
  const bad = verifyImage(image, m);
  if (bad.length) throw new ColdstartError('CORRUPT_FILE', `${image}: damaged image: ${bad.slice(0, 3).join('; ')}${bad.length > 3 ? ` (+${bad.length - 3} more)` : ''}`, { hint: 'Take the snapshot again; nothing was restored.', details: { problems: bad } });
  if (process.getuid?.() !== 0) throw new ColdstartError('PERMISSION', 'restore needs root: CRIU restores processes with their original pids (run as root)');
  const busyPids = m.pids.filter(pidAlive);
  if (busyPids.length) {
    throw new ColdstartError('ENV', `${image}: pid${busyPids.length > 1 ? 's' : ''} ${busyPids.join(', ')} already in use on this machine (the server restores with its original pids)`, {
      hint: 'Stop the process using it (an earlier restore of this image?) and try again.',
    });
  }
  const busyPorts: string[] = [];
  for (const p of m.ports) if (await portInUse(p.port, p.address)) busyPorts.push(`${p.address}:${p.port}`);
  if (busyPorts.length) throw new ColdstartError('ENV', `${image}: port${busyPorts.length > 1 ? 's' : ''} ${busyPorts.join(', ')} already in use`, { hint: 'Stop whatever listens there (an earlier restore of this image?) and try again.' });
  const avail = memAvailableBytes();
  if (avail !== null && avail < m.imageBytes) {
    throw new ColdstartError('ENV', `${image}: the image needs ${formatBytes(m.imageBytes)} of memory, ${formatBytes(avail)} is available`, { hint: 'Free memory (or stop other servers) and try again.' });
  }
  // The restored server writes its output to IMAGE.log (the path snapshot used), never to the manifest's path.
  const log = m.log === null ? null : serverLogPath(image);
  if (log) {
    const st = lstatOrNull(log);
    if (st && !st.isFile() && !st.isSymbolicLink()) throw new ColdstartError('BAD_INPUT', `${log}: not a regular file; restore puts the server's log there`, { hint: 'Move it away and try again; nothing was touched.' });
    const logSize = m.files.find((f) => f.name === LOG_COPY)!.bytes;
    const d = diskInfo(dirname(log));
    if (d.freeBytes !== null && d.freeBytes < logSize + 1024 * 1024) throw new ColdstartError('DISK_FULL', `${dirname(log)}: ${formatBytes(d.freeBytes)} free, the server's log needs ${formatBytes(logSize)}`, { hint: 'Free some space there.' });
  }

  // ---- restore
  // How much of the image the page cache already holds (mincore): a restore from cache and one from disk differ.
  let resident: number | null = null;
  if (native) {
    const pc = await native.pageCache({ paths: m.files.map((f) => imageFile(image, f.name, `${image}: manifest files[].name`)), action: 'query' }).catch(() => null);
    if (pc && pc.every((e) => e.residentBytes !== null)) resident = pc.reduce((a, e) => a + (e.residentBytes ?? 0), 0);
  }
  const total = new Stopwatch();
  const work = mkdtempSync(join(tmpdir(), 'coldstart-restore-'));
  const times: Record<string, number> = {};
  let restoredPid: number | undefined;
  try {
    // The server's output at dump time, put back at IMAGE.log (by rename: a link there is replaced, not followed)
    // and handed to CRIU as the file the image had open at m.log, which is never opened (--inherit-fd).
    const logFd = log ? putLogBack(imageFile(image, LOG_COPY, image), log) : undefined;
    const rsw = new Stopwatch();
    let pid: number;
    try {
      pid = await criuRestore(criu, image, work, ctx.env, timeoutS * 1000, logFd === undefined ? undefined : { fd: logFd, path: m.log! });
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    restoredPid = pid;
    times['criu-restore'] = rsw.elapsed();
    if (m.gpuPids.length) {
      if (!native) throw new ColdstartError('NATIVE_UNAVAILABLE', 'the image holds GPU state but the native addon is unavailable');
      const g = new Stopwatch();
      for (const p of m.gpuPids) await native.cudaCheckpoint({ pid: p, action: 'restore' });
      times['gpu-restore'] = g.elapsed();
      const u = new Stopwatch();
      for (const p of m.gpuPids) await native.cudaCheckpoint({ pid: p, action: 'unlock' });
      times['gpu-unlock'] = u.elapsed();
    }
    const readyUrl = flags.readyUrl ?? m.readyUrl ?? undefined;
    let readySeconds: number | null = null;
    if (readyUrl) readySeconds = await waitReady({ readyUrl, log: log ?? '/dev/null', pid, timeoutS, signal: ctx.signal });
    let first: null | { seconds: number; status: number; sameAsSnapshot: boolean; bodySha256: string } = null;
    if (m.warmup && flags.firstRequest) {
      const r = await sendRequest(m.warmup, timeoutS * 1000);
      const h = sha256(r.body);
      first = { seconds: r.seconds, status: r.status, bodySha256: h, sameAsSnapshot: h === m.warmup.bodySha256 };
    }
    const restoredTotal = total.elapsed();
    rmSync(work, { recursive: true, force: true });
    const gpuSeconds = m.gpuPids.length ? (times['gpu-restore'] ?? 0) + (times['gpu-unlock'] ?? 0) : null;

    const report = newReport('restore');
    report.target = { image, command: m.command, pid, ports: m.ports.map((p) => `${p.address}:${p.port}`), gpuPids: m.gpuPids };
    report.phases = [
      phase('criu-restore', times['criu-restore']!),
      phase('gpu-restore', gpuSeconds, undefined, gpuSeconds === null ? 'not measured: the image holds no GPU state' : undefined),
      phase('ready', readySeconds, 'after the restore, until the ready URL answered', readySeconds === null ? 'not measured: no ready URL' : undefined),
      phase('first-request', first?.seconds ?? null, undefined, first ? undefined : m.warmup ? 'not measured: --no-first-request' : 'not measured: the snapshot had no --warmup request'),
    ];
    report.total = { seconds: restoredTotal };
    const coldTotal = m.cold.totalSeconds;
    report.details = {
      image,
      pid,
      imageBytes: m.imageBytes,
      cold: m.cold,
      restored: { criuRestoreSeconds: times['criu-restore'], gpuRestoreSeconds: times['gpu-restore'] ?? null, gpuUnlockSeconds: times['gpu-unlock'] ?? null, readySeconds, firstRequest: first, totalSeconds: restoredTotal },
      speedup: restoredTotal > 0 ? coldTotal / restoredTotal : null,
      imageReadBytesPerSecond: times['criu-restore']! > 0 ? m.imageBytes / times['criu-restore']! : null,
      /** Image bytes in the page cache before the restore (mincore); null: not measured. */
      imageResidentBytes: resident,
    };
    if (first && !first.sameAsSnapshot) report.warnings.push(`the first request's answer differs from the one recorded at snapshot time (sha256 ${first.bodySha256.slice(0, 12)}…)`);
    return emitReport(ctx.out, report, ctx.cwd, {
      ...emitOptions(ctx, flags),
      human: () =>
        [
          `restored \`${m.command.join(' ')}\` from ${image} as pid ${pid} (${formatBytes(m.imageBytes)}, ${resident === null ? 'page-cache residency not measured' : `${Math.round((100 * resident) / Math.max(1, m.imageBytes))}% in the page cache before`})`,
          table(
            [
              ['start (spawn → ready)', fmt(m.cold.readySeconds), '—'],
              ['  criu restore', '—', fmt(times['criu-restore'])],
              ['  gpu restore + unlock', '—', gpuSeconds === null ? 'no GPU state' : fmt(gpuSeconds)],
              ['  ready', '—', fmt(readySeconds)],
              ['first request', fmt(m.cold.firstRequestSeconds), fmt(first?.seconds)],
              ['total', fmt(coldTotal), fmt(restoredTotal)],
            ],
            ['', 'cold', 'restored'],
          ),
          `${(coldTotal / restoredTotal).toFixed(1)}× faster than the cold start recorded in the image${first ? `; first answer ${first.sameAsSnapshot ? 'identical to' : 'DIFFERENT from'} the snapshot's` : ''}`,
        ].join('\n'),
    });
  } catch (e) {
    // All or nothing: a server restored but not brought back (GPU restore failed, never ready) is stopped.
    if (restoredPid !== undefined) killTree(processTree(restoredPid));
    // The work dir stays only when something failed: the error names its restore.log.
    if (!(e instanceof ColdstartError) || !/criu restore/.test(e.message)) rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------- park / unpark

function requireCheckpointNative(): NativeAddon {
  const n = loadNative();
  if (!n.ok) throw new ColdstartError('NATIVE_UNAVAILABLE', `not available: ${n.reason}`, { hint: `To fix: ${n.fixes.join('; or ')}.` });
  return n.addon;
}

function noSuchProcess(pid: number): ColdstartError {
  return new ColdstartError('NOT_FOUND', `pid ${pid}: no such process`, { hint: 'Give the pid of a running process (e.g. from `nvidia-smi` or `pgrep`).' });
}

function checkpointError(e: unknown, pid: number): ColdstartError {
  const code = (e as { code?: string }).code ?? '';
  const msg = (e as Error).message;
  if (!pidAlive(pid)) return noSuchProcess(pid);
  if (code === 'NO_DRIVER' || code === 'NO_CHECKPOINT_API') return new ColdstartError('NO_GPU', msg, { hint: 'park/unpark need an NVIDIA driver 570 or newer on this machine.' });
  return new ColdstartError('ENV', msg, { hint: code === 'CUDA_ERROR_NOT_INITIALIZED' || code === 'CUDA_ERROR_NOT_FOUND' ? `pid ${pid} holds no CUDA context.` : 'Run as root (or as the process owner).' });
}

function usedBytes(m: GpuMemoryResult | null): number | null {
  return m?.available ? m.devices.reduce((a, d) => a + d.usedBytes, 0) : null;
}

async function parkOrUnpark(ctx: Context, which: 'park' | 'unpark', pidArg: string, flags: { lockTimeout: string }): Promise<number> {
  // Usage first (2), then whether the process exists (2), then what this machine lacks (3).
  const pid = /^\d+$/.test(pidArg) ? Number(pidArg) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > PID_MAX) throw invalidArg('PID', `a process id (1 to ${PID_MAX})`, pidArg);
  const lockTimeoutS = parseSeconds('--lock-timeout', flags.lockTimeout);
  if (!pidAlive(pid)) throw noSuchProcess(pid);
  const native = requireCheckpointNative();
  let state;
  try {
    state = await native.cudaCheckpoint({ pid, action: 'state' });
  } catch (e) {
    throw checkpointError(e, pid);
  }
  const want = which === 'park' ? 'running' : 'checkpointed';
  if (state.state !== want) throw new ColdstartError('BAD_INPUT', `pid ${pid}: its CUDA state is ${state.state}, ${which} needs ${want}`, { hint: which === 'park' ? 'It is already parked: use `coldstart unpark`.' : 'It is not parked: use `coldstart park` first.' });
  const before = await native.gpuMemory().catch(() => null);
  const times: Record<string, number> = {};
  const sw = new Stopwatch();
  try {
    if (which === 'park') {
      times['gpu-lock'] = (await native.cudaCheckpoint({ pid, action: 'lock', timeoutMs: Math.round(lockTimeoutS * 1000) })).seconds;
      try {
        times['gpu-checkpoint'] = (await native.cudaCheckpoint({ pid, action: 'checkpoint' })).seconds;
      } catch (e) {
        await native.cudaCheckpoint({ pid, action: 'unlock' }).catch(() => undefined);
        throw e;
      }
    } else {
      times['gpu-restore'] = (await native.cudaCheckpoint({ pid, action: 'restore' })).seconds;
      times['gpu-unlock'] = (await native.cudaCheckpoint({ pid, action: 'unlock' })).seconds;
    }
  } catch (e) {
    throw checkpointError(e, pid);
  }
  const total = sw.elapsed();
  const after = await native.gpuMemory().catch(() => null);
  const ub = usedBytes(before);
  const ua = usedBytes(after);
  const report: Report = newReport(which);
  report.target = { pid };
  report.phases = Object.entries(times).map(([k, v]) => phase(k, v));
  report.total = { seconds: total };
  report.details = {
    pid,
    stateBefore: state.state,
    stateAfter: which === 'park' ? 'checkpointed' : 'running',
    gpuMemoryUsedBefore: ub,
    gpuMemoryUsedAfter: ua,
    gpuMemory: ub === null ? `not measured: ${before?.reason ?? 'NVML unavailable'}` : { before: before!.devices, after: after?.devices ?? null },
  };
  return emitReport(ctx.out, report, ctx.cwd, {
    human: () =>
      [
        `${which === 'park' ? 'parked' : 'unparked'} pid ${pid} in ${formatDuration(total)} (${Object.entries(times).map(([k, v]) => `${k} ${formatDuration(v)}`).join(', ')})`,
        ub === null ? `GPU memory: not measured (${before?.reason ?? 'NVML unavailable'})` : `GPU memory in use: ${formatBytes(ub)} → ${ua === null ? 'not measured' : formatBytes(ua)}`,
      ].join('\n'),
  });
}

// ---------------------------------------------------------------------------------------------- registration

export function registerSnapshot(program: Command, run: Runner): void {
  addReportOptions(
    program
      .command('snapshot')
      .description('start a server, wait until ready and warmed, checkpoint its GPU state and CRIU-dump it into an image directory')
      .requiredOption('-o, --output <dir>', 'image directory to write (atomically)')
      .option('--ready-url <url>', 'ready when this URL answers 2xx')
      .option('--ready-log <regex>', "ready when the server's output matches")
      .option('--warmup <url>', 'send this request after ready (timed as the first request; repeated and compared on restore)')
      .option('--warmup-data <json>', 'POST this JSON body with --warmup (default: GET)')
      .option('--timeout <seconds>', 'give up waiting for the server after this long', '600')
      .option('--lock-timeout <seconds>', 'wait this long for in-flight GPU work when locking CUDA', '30')
      .option('--force', 'replace an existing image directory')
      .argument('<command...>', 'the server command (after --)'),
  ).action(run((ctx, command: string[], flags: SnapshotFlags) => snapshot(ctx, command, flags)));

  addReportOptions(
    program
      .command('restore')
      .description('restore a snapshot image (CRIU, then CUDA restore + unlock), wait until ready and compare with the cold start')
      .argument('<image>', 'image directory written by `coldstart snapshot`')
      .option('--ready-url <url>', 'override the ready URL recorded in the image')
      .option('--timeout <seconds>', 'give up waiting for readiness after this long', '300')
      .option('--no-first-request', 'do not repeat the warmup request after the restore'),
  ).action(run((ctx, image: string, flags: RestoreFlags) => restore(ctx, image, flags)));

  program
    .command('park')
    .description("free a running CUDA process's GPU: lock and checkpoint its GPU memory into host memory (the process stays)")
    .argument('<pid>', 'process id')
    .option('--lock-timeout <seconds>', 'wait this long for in-flight GPU work', '30')
    .action(run((ctx, pid: string, flags: { lockTimeout: string }) => parkOrUnpark(ctx, 'park', pid, flags)));

  program
    .command('unpark')
    .description('bring a parked process back onto the GPU: restore its GPU memory and unlock it')
    .argument('<pid>', 'process id')
    .option('--lock-timeout <seconds>', 'unused; accepted for symmetry with park', '30')
    .action(run((ctx, pid: string, flags: { lockTimeout: string }) => parkOrUnpark(ctx, 'unpark', pid, flags)));
}



// ---------------------------------------------------------------------------------------------- doctor

export interface SnapshotDoctor {
  criu: { found: boolean; path?: string; version?: string; reason?: string; check: string };
  checkpointApi: { available: boolean; reason?: string };
  root: boolean;
  /** Each missing piece with its fix; empty when snapshot/restore (and park for GPU processes) work here. */
  fixes: string[];
}

/** What `coldstart doctor` shows for snapshot: CRIU and its version, `criu check`, the driver's checkpoint API, root. */
export async function snapshotDoctor(env: Record<string, string | undefined>, native: NativeAddon | null): Promise<SnapshotDoctor> {
  const { findCriu, runCapture } = await import('../snapshot/criu.js');
  const root = process.getuid?.() === 0;
  const fixes: string[] = [];
  const f = await findCriu(env);
  let check = 'not run';
  if (f.ok) {
    if (root) {
      const r = await runCapture(f.criu.path, ['check'], { timeoutMs: 30_000, env });
      check = r.code === 0 ? 'ok' : `failed: ${(r.stderr + r.stdout).split('\n').filter((l) => /Error|fail/i.test(l))[0] ?? `exit ${r.code}`}`;
      if (r.code !== 0) fixes.push('`criu check` fails: this kernel lacks a feature CRIU needs (see its output)');
    } else check = 'not run: needs root';
    const [maj, min] = f.criu.version.split('.').map(Number);
    if ((maj ?? 0) < 4 || ((maj ?? 0) === 4 && (min ?? 0) < 2)) fixes.push(`CRIU ${f.criu.version} cannot dump TCP sockets on Linux 6.16+: install 4.2 or newer (scripts/ci-criu.sh)`);
  } else fixes.push(`CRIU: ${f.reason}; install it (scripts/ci-criu.sh fetches Debian forky's criu 4.2) and set COLDSTART_CRIU`);
  if (!root) fixes.push('snapshot/restore/park need root (CRIU and the driver act on other processes)');
  let checkpointApi: SnapshotDoctor['checkpointApi'] = { available: false, reason: 'native addon unavailable' };
  if (native) {
    try {
      await native.cudaCheckpoint({ pid: process.pid, action: 'state' });
      checkpointApi = { available: true };
    } catch (e) {
      const code = (e as { code?: string }).code;
      checkpointApi = code === 'NO_DRIVER' || code === 'NO_CHECKPOINT_API' ? { available: false, reason: (e as Error).message } : { available: true };
    }
  }
  if (!checkpointApi.available) fixes.push(`GPU servers (snapshot of CUDA processes, park/unpark) need an NVIDIA driver 570 or newer: ${checkpointApi.reason ?? 'not available'}`);
  return { criu: f.ok ? { found: true, path: f.criu.path, version: f.criu.version, check } : { found: false, reason: f.reason, check }, checkpointApi, root, fixes };
}

/**
 * A snapshot image's manifest (`IMAGE/manifest.json`): what it records, the one check of a manifest read back from
 * an image (every field's type and range, every file name a plain file of the image folder itself), and the check
 * of the image's files against it (sizes and hashes). Nothing is done with an image before both pass.
 */
import { createHash } from 'node:crypto';
import { lstatSync, statSync, type Stats } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, join, normalize } from 'node:path';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { readInputFile, readInputText } from '../core/files.js';
import { writeFileAtomic } from '../core/atomic.js';
import { folderWithManifest } from '../core/outputs.js';
import { safeJoin } from '../core/paths.js';
import type { ListeningPort } from '../platform/sockets.js';
import { CHUNK_BYTES, CHUNK_HASH, firstMismatch, hashFiles, rootDigest, type HashOptions } from './hash.js';
import { WORKING_SET_MAX_FILES, WORKING_SET_MAX_RANGES, type WorkingSet } from './working-set.js';

export const MANIFEST = 'manifest.json';
export const MANIFEST_SCHEMA = 'coldstart/snapshot-image@2';
/**
 * The schema before every byte was hashed (@1: files over 64 MiB sampled, first and last MiB). Such an image is
 * refused (UNSUPPORTED, take it again): a restore never trusts bytes nobody hashed. `--force` may still replace one.
 */
export const OLD_SCHEMAS = ['coldstart/snapshot-image@1'] as const;
/** The image's copy of the server's output. */
export const LOG_COPY = 'server.log';
/**
 * The warmup's answer as the server first sent it (at most 16 MiB), verified like every file of the image: restore
 * says where its own first answer differs from it (server/compare.ts). Absent from images taken before it, or
 * without a --warmup.
 */
export const ANSWER_COPY = 'first-answer';

export interface Fingerprint {
  arch: string;
  kernel: string;
  criu: string;
  /** null: no CUDA driver on the snapshot machine (a CPU-only image). */
  gpu: null | { driver: string | null; cuda: number | null; devices: Array<{ index: number; name: string; uuid: string }> };
}

/** One file of the image: its size, the sha256 of each CHUNK_BYTES of it and the digest over those (hash.ts). */
export interface ImageFile {
  name: string;
  bytes: number;
  /** sha256 over the chunk digests, in order (hash.ts rootDigest). */
  sha256: string;
  /** sha256 of each 16 MiB chunk, in order; the last one shorter; one (of no bytes) for an empty file. */
  chunks: string[];
}

/** The image's after-restore requests in the order restore sends them. */
export function afterRestoreRequests(m: Pick<Manifest, 'afterRestore'>): HookRecord[] {
  return m.afterRestore === null ? [] : Array.isArray(m.afterRestore) ? m.afterRestore : [m.afterRestore];
}

/** A request coldstart sent to the server around the snapshot (a hook), as recorded. */
export interface HookRecord {
  url: string;
  method: 'GET' | 'POST';
  body: string | null;
}

/** Bytes of the image by what they hold (image-kinds.ts); what could not be told apart is `other`. */
export interface ImageKinds {
  /** Host memory that holds the GPU's state after the CUDA checkpoint: the tree's resident growth across it. */
  gpuStateBytes: number | null;
  /** Anonymous private memory pages (heap, stacks, malloc arenas), less gpuStateBytes. */
  anonymousBytes: number;
  /** Pages of file-backed mappings (private copies and shared file pages CRIU saved). */
  fileMappedBytes: number;
  /** Shared anonymous / shmem / SysV memory pages. */
  sharedBytes: number;
  /** Image files that are not page data: file contents (ghost files), descriptors, registers, metadata. */
  filesBytes: number;
  /** Page data no mapping in the image accounts for, or images this reader does not parse. */
  otherBytes: number;
  notes: string[];
}

/** One GPU a checkpointed process held memory on at snapshot time (NVML); bytes null: NVML could not say. */
export interface GpuUsed {
  pid: number;
  uuid: string;
  bytes: number | null;
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
  /**
   * `bodySha256`: the answer's bytes; `answerSha256` (src/server/answer.ts): the answer as compared, ids and timestamps
   * left out — what restore compares with (images before it have only the bytes').
   */
  warmup: null | { url: string; method: 'GET' | 'POST'; body: string | null; status: number; bodySha256: string; answerSha256?: string };
  rootPid: number;
  pids: number[];
  /** Pids that held a CUDA context and were checkpointed before the dump. */
  gpuPids: number[];
  /**
   * The GPUs each of gpuPids held memory on just before the lock (NVML), for restore's GPU plan (gpu-map.ts); null or
   * absent (images before it): not recorded.
   */
  gpuUsed?: GpuUsed[] | null;
  ports: ListeningPort[];
  fingerprint: Fingerprint;
  /** The cold start measured while taking the snapshot, seconds (null: not measured, see `coldNotes`). */
  cold: { readySeconds: number; firstRequestSeconds: number | null; totalSeconds: number; notes: string[] };
  snapshotSeconds: Record<string, number>;
  imageBytes: number;
  memoryEstimateBytes: number;
  /** How files[].chunks were taken (hash.ts CHUNK_HASH). */
  hash: typeof CHUNK_HASH;
  files: ImageFile[];
  /** Sent after warmup, before the GPU lock and the dump (e.g. vLLM's /sleep?level=1); null: none. */
  beforeSnapshot: (HookRecord & { status: number; seconds: number }) | null;
  /**
   * Sent by restore after the restore, in order, before ready and the first request (e.g. /wake_up, then a reload of
   * the weights); null: none. One request is written as an object (as images before lists were), more as a list.
   */
  afterRestore: HookRecord | HookRecord[] | null;
  /** The image's bytes by kind; null when it could not be read. */
  kinds: ImageKinds | null;
  /**
   * The pages of its files (libraries) the server had mapped, which restore reads ahead (working-set.ts); null or
   * absent (images before it): not recorded.
   */
  workingSet?: WorkingSet | null;
}

/** How this machine (`a`) differs from the one an image was taken on (`b`), in words; empty when it restores here. */
export function fingerprintDiff(a: Fingerprint, b: Fingerprint): string[] {
  const out: string[] = [];
  if (a.arch !== b.arch) out.push(`architecture ${a.arch} here, ${b.arch} in the image`);
  if (a.kernel !== b.kernel) out.push(`kernel ${a.kernel} here, ${b.kernel} in the image`);
  if (a.criu.split('.').slice(0, 2).join('.') !== b.criu.split('.').slice(0, 2).join('.')) out.push(`CRIU ${a.criu} here, ${b.criu} in the image`);
  if (b.gpu) {
    if (!a.gpu) out.push('the image holds GPU state but this machine has no CUDA driver');
    // Which GPUs of this machine take the image's GPU state (same model, enough memory) is gpu-map.ts's plan.
    else if (a.gpu.driver !== b.gpu.driver) out.push(`NVIDIA driver ${a.gpu.driver ?? 'unknown'} here, ${b.gpu.driver ?? 'unknown'} in the image`);
  }
  return out;
}

/** stat/lstat of a path that may be absent: null then; other failures (ENOTDIR, ELOOP, EACCES) as ColdstartErrors. */
export function statOrNull(path: string, link = false): Stats | null {
  try {
    return (link ? lstatSync : statSync)(path, { throwIfNoEntry: false }) ?? null;
  } catch (e) {
    throw fromSystemError(e, path, 'look at');
  }
}
export const lstatOrNull = (path: string) => statOrNull(path, true);

/** The most a manifest may be (a few KiB in practice: one line per image file); past it, it is refused unread. */
export const MANIFEST_MAX_BYTES = 16 << 20;
/** Linux's PID_MAX_LIMIT: no pid is larger. */
export const PID_MAX = 1 << 22;

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
 * A recorded working set (the manifest's `workingSet`, or the restored server's kept beside the image): only ever read
 * into the page cache, and only where the file is still the one recorded (working-set.ts). Throws through `f`.
 */
function checkWorkingSet(raw: unknown, f: ReturnType<typeof manifestFields>): WorkingSet {
  const ws = f.obj(raw, 'workingSet');
  let total = 0;
  let ranges = 0;
  const files = f.arr(ws.files, 'workingSet.files');
  if (files.length > WORKING_SET_MAX_FILES) f.fail('workingSet.files', `at most ${WORKING_SET_MAX_FILES} files`, `${files.length}`);
  files.forEach((e, i) => {
    const o = f.obj(e, `workingSet.files[${i}]`);
    const p = f.str(o.path, `workingSet.files[${i}].path`);
    if (!isAbsolute(p) || normalize(p) !== p) f.fail(`workingSet.files[${i}].path`, 'an absolute, normal path', p);
    const size = f.int(o.bytes, `workingSet.files[${i}].bytes`, 0);
    if (typeof o.mtimeMs !== 'number' || !Number.isFinite(o.mtimeMs)) f.fail(`workingSet.files[${i}].mtimeMs`, 'a number', o.mtimeMs);
    const r = f.arr(o.ranges, `workingSet.files[${i}].ranges`);
    ranges += r.length / 2;
    if (r.length % 2 !== 0 || ranges > WORKING_SET_MAX_RANGES) f.fail(`workingSet.files[${i}].ranges`, `offset, length pairs (at most ${WORKING_SET_MAX_RANGES} in all)`, `${r.length} numbers`);
    let end = 0;
    for (let k = 0; k < r.length; k += 2) {
      const off = f.int(r[k], `workingSet.files[${i}].ranges[${k}]`, end, size);
      const len = f.int(r[k + 1], `workingSet.files[${i}].ranges[${k + 1}]`, 1, size - off);
      end = off + len;
      total += len;
    }
  });
  if (f.int(ws.bytes, 'workingSet.bytes', 0) !== total) f.fail('workingSet.bytes', `the sum of the ranges' lengths (${total})`, ws.bytes);
  if (ws.leftOut !== undefined) f.int(ws.leftOut, 'workingSet.leftOut', 0);
  // Read where present: restore then checks every file the tree mapped itself (size, mtime) instead of CRIU's build-IDs.
  if (ws.complete !== undefined && (ws.complete !== true || ws.leftOut !== undefined)) f.fail('workingSet.complete', 'true (every mapped file listed), and no leftOut beside it', ws.complete);
  return ws as unknown as WorkingSet;
}

/**
 * What the restored server touched of its files (its mapped pages after its first answer), kept in the image folder
 * by restore: the next restore reads these ahead instead of the manifest's working set, everything the server had
 * touched in its life before the snapshot (0.57 GB for the 8B test server, of which it maps 0.08 GB once restored).
 */
export const RESTORED_WORKING_SET = 'working-set.restored.json';
export const RESTORED_WORKING_SET_SCHEMA = 'coldstart/restored-working-set@1';

/** Where restore keeps the restored server's working set of `image`. */
export function restoredWorkingSetPath(image: string): string {
  return join(image, RESTORED_WORKING_SET);
}

/** The restored server's working set kept in `image` (null: none kept); one that fails its check throws CORRUPT_FILE. */
export function readRestoredWorkingSet(image: string, digest: string): WorkingSet | null {
  const path = restoredWorkingSetPath(image);
  if (!lstatOrNull(path)) return null;
  const raw = jsonOf(readInputText(path, 'restored working set', MANIFEST_MAX_BYTES), path, 'Remove it; the next restore keeps a new one.');
  return validateRestoredWorkingSet(raw, path, digest);
}

/**
 * The working set a restore of `image` reads ahead, one answer for restore and `prefetch IMAGE`: the restored server's
 * own where an earlier restore kept one for this manifest, else the manifest's; null where the manifest records none.
 * `manifestSha256`: readManifestAndDigest's, of the bytes validated (never a second read); `note`: why a kept one was
 * not used.
 */
export function workingSetToRead(image: string, m: Pick<Manifest, 'workingSet'>, manifestSha256: string): { ws: WorkingSet | null; kept: boolean; note: string | null } {
  if (!m.workingSet?.files.length) return { ws: null, kept: false, note: null };
  try {
    const kept = readRestoredWorkingSet(image, manifestSha256);
    return { ws: kept ?? m.workingSet, kept: kept !== null, note: null };
  } catch (e) {
    return { ws: m.workingSet, kept: false, note: `the restored server's working set kept in ${image} was not used (the manifest's was read instead): ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Keeps `ws` as the restored server's working set of `image` (atomic: a reader sees the old file or the new one). */
export function keepRestoredWorkingSet(image: string, digest: string, ws: WorkingSet): string {
  const path = restoredWorkingSetPath(image);
  writeFileAtomic(path, `${JSON.stringify({ schema: RESTORED_WORKING_SET_SCHEMA, manifestSha256: digest, workingSet: ws })}\n`);
  return path;
}

/**
 * The check of a restored server's working set read back from IMAGE/working-set.restored.json: its schema, the image's
 * manifest it was recorded for (sha256 of manifest.json: an image taken again at the same path leaves it unused) and
 * the working set itself, as the manifest's is checked. CORRUPT_FILE naming the file and field otherwise.
 */
export function validateRestoredWorkingSet(raw: unknown, path: string, manifestSha256: string): WorkingSet {
  const f = manifestFields(path);
  const o = f.obj(raw, 'the file');
  f.oneOf(o.schema, 'schema', [RESTORED_WORKING_SET_SCHEMA]);
  if (o.manifestSha256 !== manifestSha256) f.fail('manifestSha256', `the sha256 of this image's manifest.json (${manifestSha256})`, o.manifestSha256);
  return checkWorkingSet(o.workingSet, f);
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
  if ((OLD_SCHEMAS as readonly unknown[]).includes(m.schema)) {
    throw new ColdstartError('UNSUPPORTED', `${path}: an image from an older coldstart (${String(m.schema)}): it does not record a hash of every byte, so it is not restored`, {
      hint: 'Take the snapshot again with this version of coldstart (`coldstart snapshot --force -o …` replaces it); nothing was touched.',
      details: { schema: m.schema, want: MANIFEST_SCHEMA },
    });
  }
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
    if (w.answerSha256 !== undefined) f.sha256(w.answerSha256, 'warmup.answerSha256');
  }
  const hook = (v: unknown, field: string) => {
    const o = f.obj(v, field);
    f.url(o.url, `${field}.url`);
    f.oneOf(o.method, `${field}.method`, ['GET', 'POST'] as const);
    f.strOrNull(o.body, `${field}.body`);
    return o;
  };
  if (m.beforeSnapshot !== null) {
    const o = hook(m.beforeSnapshot, 'beforeSnapshot');
    f.int(o.status, 'beforeSnapshot.status', 100, 599);
    f.seconds(o.seconds, 'beforeSnapshot.seconds');
  }
  if (Array.isArray(m.afterRestore)) m.afterRestore.forEach((h, i) => hook(h, `afterRestore[${i}]`));
  else if (m.afterRestore !== null) hook(m.afterRestore, 'afterRestore');
  if (m.kinds !== null) {
    const k = f.obj(m.kinds, 'kinds');
    if (k.gpuStateBytes !== null) f.int(k.gpuStateBytes, 'kinds.gpuStateBytes', 0);
    for (const key of ['anonymousBytes', 'fileMappedBytes', 'sharedBytes', 'filesBytes', 'otherBytes'] as const) f.int(k[key], `kinds.${key}`, 0);
    f.arr(k.notes, 'kinds.notes').forEach((n, i) => f.str(n, `kinds.notes[${i}]`));
  }
  if (m.workingSet !== undefined && m.workingSet !== null) checkWorkingSet(m.workingSet, f);
  const rootPid = f.pid(m.rootPid, 'rootPid');
  const pids = f.arr(m.pids, 'pids', 1).map((p, i) => f.pid(p, `pids[${i}]`));
  if (new Set(pids).size !== pids.length) f.fail('pids', 'distinct process ids', m.pids);
  if (!pids.includes(rootPid)) f.fail('pids', `a list holding rootPid ${rootPid}`, m.pids);
  f.arr(m.gpuPids, 'gpuPids').forEach((p, i) => {
    if (!pids.includes(f.pid(p, `gpuPids[${i}]`))) f.fail(`gpuPids[${i}]`, 'one of pids', p);
  });
  if (m.gpuUsed !== undefined && m.gpuUsed !== null) {
    f.arr(m.gpuUsed, 'gpuUsed').forEach((u, i) => {
      const o = f.obj(u, `gpuUsed[${i}]`);
      if (!(m.gpuPids as unknown[]).includes(f.pid(o.pid, `gpuUsed[${i}].pid`))) f.fail(`gpuUsed[${i}].pid`, 'one of gpuPids', o.pid);
      f.str(o.uuid, `gpuUsed[${i}].uuid`);
      if (o.bytes !== null) f.int(o.bytes, `gpuUsed[${i}].bytes`, 0);
    });
  }
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
    const bytes = o.bytes as number;
    const want = Math.max(1, Math.ceil(bytes / CHUNK_BYTES));
    const chunks = f.arr(o.chunks, `files[${i}].chunks`).map((c, k) => f.sha256(c, `files[${i}].chunks[${k}]`));
    if (chunks.length !== want) f.fail(`files[${i}].chunks`, `${want} chunk digests for ${bytes} bytes`, `${chunks.length}`);
    if (f.sha256(o.sha256, `files[${i}].sha256`) !== rootDigest(chunks)) f.fail(`files[${i}].sha256`, 'the digest of its chunks', o.sha256);
  });
  f.oneOf(m.hash, 'hash', [CHUNK_HASH] as const);
  if (m.log !== null && !names.has(LOG_COPY)) f.fail('files', `a list holding ${LOG_COPY} (the server's log)`, m.files);
  if (f.int(m.imageBytes, 'imageBytes', 0) !== sum) f.fail('imageBytes', `the sum of files[].bytes (${sum})`, m.imageBytes);
  return m as unknown as Manifest;
}

/**
 * `image/name` for a file name from the manifest: a plain file of the image folder itself (safeJoin's rule, and no
 * `/`: CRIU's images are flat, and a subfolder could be a link out of it), else HOSTILE_FILE.
 */
export function imageFile(image: string, name: string, what: string): string {
  const p = safeJoin(image, name, what);
  if (name.includes('/')) {
    throw new ColdstartError('HOSTILE_FILE', `${what}: refused the name ${shown(name)}: an image holds files only at its top level`, { hint: 'Take the snapshot again; nothing was touched.' });
  }
  return p;
}

/**
 * Reads and validates `image/manifest.json` (the one untrusted-file reader: regular file only, size-capped), with the
 * sha256 of the very bytes it validated: what a kept working set belongs to (workingSetToRead, keepRestoredWorkingSet).
 */
export function readManifestAndDigest(image: string): { manifest: Manifest; sha256: string } {
  const st = statOrNull(image);
  if (!st) throw new ColdstartError('NOT_FOUND', `${image}: no such image directory`, { hint: 'Give a directory written by `coldstart snapshot`.' });
  if (!st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${image}: not a directory; an image is the directory \`coldstart snapshot -o\` wrote`);
  const path = join(image, MANIFEST);
  let bytes: Buffer;
  try {
    bytes = readInputFile(path, 'image manifest', MANIFEST_MAX_BYTES);
  } catch (e) {
    if (e instanceof ColdstartError && e.code === 'NOT_FOUND') {
      throw new ColdstartError('CORRUPT_FILE', `${image}: has no manifest.json`, { hint: 'Give a directory written by `coldstart snapshot` (a failed or interrupted snapshot leaves none).' });
    }
    throw e;
  }
  const manifest = validateManifest(jsonOf(bytes.toString('utf8'), path, 'Take the snapshot again; nothing was touched.'), path, image);
  return { manifest, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** `text` parsed as JSON, or CORRUPT_FILE naming `path` (an image's file is untrusted input). */
function jsonOf(text: string, path: string, hint: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ColdstartError('CORRUPT_FILE', `${path}: not JSON (${(e as Error).message})`, { hint });
  }
}

/** CRIU's page data (pages-N.img): copied into the restored memory as is, never parsed by CRIU. */
export const isPageData = (name: string): boolean => /^pages-\d+\.img$/.test(name);

/** One file of an image that differs from its manifest; `from`/`to`: the first differing chunk's byte range. */
export interface ImageProblem {
  name: string;
  problem: 'missing' | 'size' | 'bytes';
  message: string;
  from?: number;
  to?: number;
}

/** An image file that is a link, a FIFO or a folder: refused, never followed or opened (verify, prefetch IMAGE). */
export function notRegularInImage(p: string, st: Stats): ColdstartError {
  return new ColdstartError('HOSTILE_FILE', `${p}: ${st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'} in the image; an image holds only regular files`, { hint: 'Take the snapshot again; nothing was touched.' });
}

/**
 * Every byte of every file the manifest lists, hashed in 16 MiB chunks on worker threads (hash.ts) and compared with
 * the chunk digests recorded at snapshot time; names already validated. Each must be a regular file of the image
 * folder itself — a symbolic link or special file there is refused (HOSTILE_FILE) before it is opened. The read
 * also leaves the image in the page cache, where CRIU reads it next. `hash`: which files to hash (default all; the
 * sizes of all are checked). Returns the problems (empty: every byte checked matches).
 */
export async function verifyImage(
  image: string,
  m: Manifest,
  opts: Omit<HashOptions, 'readBytes'> & {
    hash?: (name: string) => boolean;
    /**
     * Called once with the files about to be hashed, in the order they are hashed, when there are any, before
     * verifyImage returns its promise (nothing is awaited before it): a reader started there returns its mark
     * (HashOptions.readBytes) and the hash follows it.
     */
    readAhead?: (paths: string[]) => () => number;
  } = {},
): Promise<ImageProblem[]> {
  const bad: ImageProblem[] = [];
  const toHash: Array<{ f: ImageFile; path: string }> = [];
  for (const f of m.files) {
    const p = imageFile(image, f.name, `${image}: manifest files[].name`);
    const st = lstatOrNull(p);
    if (!st) {
      bad.push({ name: f.name, problem: 'missing', message: `${f.name} is missing` });
      continue;
    }
    if (!st.isFile()) throw notRegularInImage(p, st);
    if (st.size !== f.bytes) {
      bad.push({ name: f.name, problem: 'size', message: `${f.name} is ${st.size} bytes, the manifest says ${f.bytes}` });
      continue;
    }
    if (opts.hash?.(f.name) ?? true) toHash.push({ f, path: p });
  }
  if (bad.length) return bad;
  const paths = toHash.map((t) => t.path);
  const readBytes = paths.length ? opts.readAhead?.(paths) : undefined;
  const got = await hashFiles(paths, { threads: opts.threads, signal: opts.signal, onBytes: opts.onBytes, readBytes });
  got.forEach((g, i) => {
    const { f } = toHash[i]!;
    const mm = firstMismatch(g, f);
    if (mm) bad.push({ name: f.name, problem: 'bytes', from: mm.from, to: mm.to, message: `${f.name}: bytes ${mm.from}–${mm.to} (16 MiB chunk ${Math.floor(mm.from / CHUNK_BYTES)}) differ from the snapshot's` });
  });
  return bad;
}

/** guardOutput's recogniser for `snapshot -o`: --force replaces only a folder that holds an image manifest. */
const isCurrentImage = folderWithManifest(MANIFEST, MANIFEST_SCHEMA, MANIFEST_MAX_BYTES);
const isOldImages = OLD_SCHEMAS.map((schema) => folderWithManifest(MANIFEST, schema, MANIFEST_MAX_BYTES));
export const isImageFolder: typeof isCurrentImage = (path, st) => {
  const why = isCurrentImage(path, st);
  return why === null || isOldImages.some((old) => old(path, st) === null) ? null : why;
};

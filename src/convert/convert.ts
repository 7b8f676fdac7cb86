/**
 * PyTorch checkpoint → safetensors, streaming and byte-exact. The plan (which tensors, which aliases are dropped,
 * where each tensor's bytes go) is made here from `openTorchCheckpoint` descriptors; the bytes are moved by the
 * native addon (fileio.cc) with copy_file_range or a bounded gather. Output is written under temporary names,
 * optionally verified, and renamed into place only when complete.
 */
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmdirSync, statSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ColdstartError, fromSystemError, invalidOption } from '../core/errors.js';
import { intOption } from '../core/flags.js';
import { sweepLeftovers, tempPathFor, trackTemp, removeTemp, untrackTemp } from '../core/atomic.js';
import { openInput, readInputText } from '../core/files.js';
import { formatBytes } from '../core/format.js';
import { followModelLink, modelLinkRoots } from '../core/links.js';
import { guardOutput, markOwnedFolder, ownedFolder, removeOwnedFolder, OWNED_MARKER } from '../core/outputs.js';
import { makeDirs } from '../core/paths.js';
import { Stopwatch } from '../core/clock.js';
import { requireNative, type FileOp, type NativeAddon } from '../native.js';
import { buildHeader, readHeader } from '../formats/safetensors.js';
import { CASTABLE_FLOAT_DTYPES, DTYPE_SIZES, parseDtypeName, type Dtype } from '../formats/dtypes.js';
import { WEIGHT_INDEX_NAMES, notWeightsReason, parseWeightIndex, weightFormatOf } from '../formats/weights.js';
import { openTorchCheckpoint, type TensorDescriptor, type TorchCheckpoint } from '../formats/torch.js';

export type TargetDtype = 'F16' | 'BF16' | 'F32';

/** The TargetDtype any of its names means (f16, fp16, half, bfloat16, BF16, float32…), or null. */
export function targetDtype(name: string): TargetDtype | null {
  const d = parseDtypeName(name);
  return d === 'F16' || d === 'BF16' || d === 'F32' ? d : null;
}

export interface ConvertOptions {
  /** A torch.save file or a Hugging Face model directory. */
  input: string;
  /** Output file (file input) or directory (directory input); defaults beside the input. */
  output?: string;
  /** How refusals of the output path name it (default `output`; the CLI passes its flag, `--output`). */
  outputName?: string;
  /** Convert floating tensors (F16/BF16/F32/F64) to this dtype on the way. */
  dtype?: TargetDtype;
  /** Maximum bytes per output file; tensors larger than this get a file of their own. */
  shardSize?: number;
  /** Wrapping checkpoints: which (dotted) key holds the weights. */
  key?: string;
  /** Re-read the output and compare every tensor with the source before renaming it into place. */
  verify?: boolean;
  /** Overwrite an existing output. */
  force?: boolean;
  /** Names to drop first when tensors are tied (default: the usual LM-head/decoder names). */
  tiedNames?: readonly string[];
  onProgress?(doneBytes: number, totalBytes: number): void;
  signal?: AbortSignal;
  /** Non-fatal notes (duplicated overlapping views, skipped files). */
  warn?(message: string): void;
  /** fsync outputs before renaming (default true). */
  fsync?: boolean;
  /**
   * Write even when the tensors would expand to more than AMPLIFICATION_LIMIT × the bytes of the storages they
   * view (stride-0 or overlapping views: a 605-byte file could otherwise write 1 GiB).
   */
  allowAmplification?: boolean;
  /** Tests: use this addon instead of loading the real one. */
  native?: NativeAddon;
}

export interface ConvertedFile {
  path: string;
  tensors: number;
  /** File size: header + data. */
  bytes: number;
}

export interface ConvertResult {
  schema: 'coldstart/convert@1';
  input: string;
  inputKind: 'file' | 'directory';
  output: string;
  sources: string[];
  /** Wrapping key the weights came from ('' for a plain state dict). */
  key: string;
  format: 'zip' | 'legacy' | 'mixed';
  byteorder: 'little' | 'big' | 'mixed';
  files: ConvertedFile[];
  /** Index file written when the output is sharded. */
  index: string | null;
  carried: string[];
  tensors: number;
  /** Tensor data bytes written (excluding headers). */
  bytes: number;
  /** Bytes of the source checkpoints. */
  sourceBytes: number;
  /** removed name → kept name, as recorded in `__metadata__`. */
  droppedAliases: Record<string, string>;
  /** Tensors whose dtype --dtype changed. */
  convertedDtype: number;
  /** Floating tensors --dtype would cast that were already in that dtype (written as they were). */
  keptDtype: number;
  dtype: TargetDtype | null;
  verified: boolean;
  copyFileRange: boolean;
  seconds: { read: number; write: number; verify: number | null; total: number };
  /** Data bytes per second of the write step. */
  throughputBytesPerSecond: number;
}

/** Tied-weights names (like transformers' `_tied_weights_keys`): these are the ones dropped in favour of the embedding. */
export const DEFAULT_TIED_NAMES: readonly string[] = [
  'lm_head.weight',
  'cls.predictions.decoder.weight',
  'cls.predictions.decoder.bias',
  'lm_head.decoder.weight',
  'lm_head.decoder.bias',
  'embed_out.weight',
  'output_projection.weight',
  'proj_out.weight',
  'model.decoder.output_projection.weight',
];

/**
 * Output bytes (at the source dtypes) may be at most this multiple of the bytes of the distinct storages the
 * tensors view, plus AMPLIFICATION_SLACK; more is refused before anything is written unless allowAmplification.
 * Real checkpoints stay at ≤ 1× (every byte viewed once) or slightly above (overlapping-but-different views).
 */
export const AMPLIFICATION_LIMIT = 2;
const AMPLIFICATION_SLACK = 1 << 20;

/** Refuses a plan whose outputs expand far beyond the storages they view (stride-0 / overlapping-view bombs). */
export function checkAmplification(tensors: readonly TensorDescriptor[], where: string, allow = false): { outBytes: number; storageBytes: number } {
  const storages = new Map<string, number>();
  let outBytes = 0;
  for (const t of tensors) {
    storages.set(`${t.storage.file}\0${t.storage.key}`, t.storage.nbytes);
    outBytes += t.nbytes;
  }
  let storageBytes = 0;
  for (const n of storages.values()) storageBytes += n;
  if (!allow && outBytes > AMPLIFICATION_LIMIT * storageBytes + AMPLIFICATION_SLACK) {
    throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the tensors would write ${outBytes} bytes from ${storageBytes} bytes of storage (${(outBytes / Math.max(1, storageBytes)).toFixed(1)}×, limit ${AMPLIFICATION_LIMIT}×: stride-0 or overlapping views); nothing was written`, {
      hint: 'If the expanded views are intended, pass --allow-amplification.',
    });
  }
  return { outBytes, storageBytes };
}

// ------------------------------------------------------------------------------------------------ inputs

interface InputSet {
  kind: 'file' | 'directory';
  dir: string;
  files: string[];
  /** Weight files and their index, not carried over to a directory output. */
  weightFiles: Set<string>;
  /** Names the index expects in each shard (sharded input only). */
  indexMap?: Map<string, string>;
  /** Where the folder's symlinks may point (modelLinkRoots); directory input only. */
  linkRoots: string[];
}

function resolveInput(input: string): InputSet {
  let st;
  try {
    st = statSync(input);
  } catch (e) {
    throw fromSystemError(e, input, 'read');
  }
  if (st.isFile()) return { kind: 'file', dir: dirname(input), files: [input], weightFiles: new Set([basename(input)]), linkRoots: [] };
  if (!st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${input}: not a regular file or directory`);
  let names: string[];
  try {
    names = readdirSync(input);
  } catch (e) {
    throw fromSystemError(e, input, 'list');
  }
  // Every file read from the folder goes through its link rule: a link out of the model is refused by name.
  const roots = modelLinkRoots(input);
  const inFolder = (name: string) => {
    const p = join(input, name);
    followModelLink(p, roots);
    return p;
  };
  const indexName = names.find((n) => n === WEIGHT_INDEX_NAMES.bin);
  if (indexName) {
    const ipath = inFolder(indexName);
    // Regular file, size-capped before reading: a FIFO or /dev/zero named like an index is refused, never read.
    const { weightMap: map, shards } = parseWeightIndex(readInputText(ipath, 'checkpoint index'), ipath);
    for (const [k, v] of map) {
      // Convert's rule is stricter than a loader's: every shard is a file of this very folder (no sub-folders).
      if (v !== basename(v) || v === '..' || v === '.' || v.includes('\\')) {
        throw new ColdstartError('HOSTILE_FILE', `${ipath}: refused: weight_map entry for "${k}" names ${JSON.stringify(v)}, not a file in this directory`);
      }
    }
    for (const s of shards) {
      if (!existsSync(join(input, s))) throw new ColdstartError('NOT_FOUND', `${join(input, s)}: shard listed in ${indexName} is missing`, { hint: 'Download the complete model.' });
      inFolder(s);
    }
    return { kind: 'directory', dir: input, files: shards.map((s) => join(input, s)), weightFiles: new Set([indexName, ...shards]), indexMap: map, linkRoots: roots };
  }
  if (names.includes('pytorch_model.bin')) return { kind: 'directory', dir: input, files: [inFolder('pytorch_model.bin')], weightFiles: new Set(['pytorch_model.bin']), linkRoots: roots };
  const shardLike = names.filter((n) => /^pytorch_model-\d+-of-\d+\.bin$/.test(n));
  if (shardLike.length) throw new ColdstartError('CORRUPT_FILE', `${input}: sharded pytorch_model-*.bin files without pytorch_model.bin.index.json`, { hint: 'Download the index file too.' });
  const candidates = names.filter((n) => weightFormatOf(n) === 'bin' && !notWeightsReason(n));
  if (candidates.length === 1) return { kind: 'directory', dir: input, files: [inFolder(candidates[0]!)], weightFiles: new Set(candidates), linkRoots: roots };
  if (names.some((n) => n.endsWith('.safetensors'))) throw new ColdstartError('BAD_INPUT', `${input}: already holds safetensors weights and no pytorch_model.bin; nothing to convert`);
  if (candidates.length > 1) throw new ColdstartError('AMBIGUOUS', `${input}: several checkpoint files (${candidates.join(', ')}) and no index`, { hint: 'Pass the file to convert directly.' });
  throw new ColdstartError('NOT_FOUND', `${input}: no pytorch_model.bin, sharded index or checkpoint file in this directory`);
}

// ------------------------------------------------------------------------------------------------ planning

export interface PlannedTensor {
  name: string;
  source: number;
  t: TensorDescriptor;
  outDtype: Dtype;
  outBytes: number;
}

/** Byte range of the storage a view touches. */
function extent(t: TensorDescriptor): [number, number] {
  const es = DTYPE_SIZES[t.dtype];
  if (t.numel === 0) return [t.storageOffset * es, t.storageOffset * es];
  let last = t.storageOffset;
  for (let i = 0; i < t.shape.length; i++) last += (t.shape[i]! - 1) * t.strides[i]!;
  return [t.storageOffset * es, (last + 1) * es];
}

function sameView(a: TensorDescriptor, b: TensorDescriptor): boolean {
  return a.dtype === b.dtype && a.storageOffset === b.storageOffset && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]) && a.strides.every((d, i) => d === b.strides[i] || b.shape[i] === 1);
}

/**
 * Shared tensors, like Hugging Face's converter: tensors in one storage whose byte ranges overlap form a group;
 * identical views are aliases — one name is kept (not a tied-weights name if possible, then the first in sort
 * order) and the others are recorded as removed → kept. Overlapping views that differ are written separately.
 */
export function dedupeAliases(
  entries: Array<{ name: string; source: number; t: TensorDescriptor }>,
  tied: readonly string[] = DEFAULT_TIED_NAMES,
): { kept: Array<{ name: string; source: number; t: TensorDescriptor }>; dropped: Record<string, string>; overlapping: string[][] } {
  const tiedSet = new Set(tied);
  const byStorage = new Map<string, typeof entries>();
  for (const e of entries) {
    const k = `${e.source}\u0000${e.t.storageKey}`;
    const list = byStorage.get(k);
    if (list) list.push(e);
    else byStorage.set(k, [e]);
  }
  const drop = new Set<string>();
  const dropped: Record<string, string> = {};
  const overlapping: string[][] = [];
  for (const list of byStorage.values()) {
    if (list.length < 2) continue;
    const ranged = list.filter((e) => e.t.numel > 0).map((e) => ({ e, r: extent(e.t) })).sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1]);
    // union overlapping intervals into groups
    let group: typeof ranged = [];
    let end = -1;
    const flush = () => {
      if (group.length > 1) {
        // within a group, identical views are aliases of each other
        const classes: Array<typeof ranged> = [];
        for (const g of group) {
          const c = classes.find((cl) => sameView(cl[0]!.e.t, g.e.t));
          if (c) c.push(g);
          else classes.push([g]);
        }
        for (const cl of classes) {
          if (cl.length < 2) continue;
          const names = cl.map((g) => g.e.name).sort();
          const keep = names.find((n) => !tiedSet.has(n)) ?? names[0]!;
          for (const n of names) if (n !== keep) {
            drop.add(n);
            dropped[n] = keep;
          }
        }
        if (classes.length > 1) overlapping.push(classes.map((cl) => cl.map((g) => g.e.name).sort()[0]!));
      }
      group = [];
    };
    for (const x of ranged) {
      if (x.r[0] >= end) flush();
      group.push(x);
      end = Math.max(end, x.r[1]);
    }
    flush();
  }
  return { kept: entries.filter((e) => !drop.has(e.name)), dropped, overlapping };
}

function outDtypeFor(d: Dtype, target?: TargetDtype): Dtype {
  if (!target) return d;
  return CASTABLE_FLOAT_DTYPES.has(d) ? target : d;
}

function shardName(stem: string, i: number, n: number): string {
  return `${stem}-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

// ------------------------------------------------------------------------------------------------ writing

function nativeFailure(err: unknown, path: string): ColdstartError {
  if (err instanceof ColdstartError) return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === 'CORRUPT') return new ColdstartError('CORRUPT_FILE', e.message ?? String(err), { hint: 'The checkpoint is truncated or changed while converting; nothing was left behind.' });
  if (e?.code && /^E[A-Z]+$/.test(e.code)) return fromSystemError({ code: e.code, message: e.message }, path, 'write');
  return new ColdstartError('INTERNAL', `${path}: ${e?.message ?? String(err)}`, { cause: err });
}

interface OutFile {
  final: string;
  tmp: string;
  tensors: PlannedTensor[];
  header: Buffer;
  offsets: Array<[number, number]>;
  dataSize: number;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason instanceof ColdstartError ? signal.reason : new ColdstartError('INTERRUPTED', 'interrupted');
}

/** Converts a checkpoint file or model directory; see ConvertOptions. Leaves nothing behind on failure. */
// ------------------------------------------------------------------------------------------------ the plan

export interface PlanInput {
  /** The resolved input (file or directory) and what resolveInput found in it. */
  input: string;
  kind: 'file' | 'directory';
  files: string[];
  indexMap?: Map<string, string>;
  /** openTorchCheckpoint of each file, in order. */
  checkpoints: TorchCheckpoint[];
  dtype?: TargetDtype;
  tiedNames?: readonly string[];
  shardSize?: number;
  output?: string;
  /** Whether `output` names an existing directory (the one fact of the file system the plan needs). */
  outputIsDirectory: boolean;
  allowAmplification?: boolean;
}

export interface ConversionPlan {
  /** Kept tensors in output order, with their output dtype and size. */
  planned: PlannedTensor[];
  /** removed name → kept name (aliases written once). */
  dropped: Record<string, string>;
  warnings: string[];
  convertedDtype: number;
  keptDtype: number;
  finalTarget: string;
  outDir: string;
  stem: string;
  shards: PlannedTensor[][];
  sharded: boolean;
  metadata: Record<string, string>;
}

/**
 * What a conversion will write, decided without touching the disk (pure, like the loader's chunk plan): names
 * checked across shards and against the index, aliases deduplicated, the amplification limit applied, tensors
 * ordered and converted, the output layout (file/dir, stem, shards) and `__metadata__`.
 */
export function planConversion(plan: PlanInput): ConversionPlan {
  const warnings: string[] = [];
  const entries: Array<{ name: string; source: number; t: TensorDescriptor }> = [];
  const seen = new Map<string, number>();
  plan.checkpoints.forEach((cp, i) => {
    for (const t of cp.tensors) {
      if (seen.has(t.name)) throw new ColdstartError('CORRUPT_FILE', `tensor "${t.name}" appears in both ${basename(plan.files[seen.get(t.name)!]!)} and ${basename(plan.files[i]!)}`);
      if (t.name === '__metadata__') throw new ColdstartError('UNSUPPORTED', `${plan.files[i]}: a tensor is named "__metadata__", which safetensors reserves`);
      seen.set(t.name, i);
      entries.push({ name: t.name, source: i, t });
    }
  });
  if (plan.indexMap) {
    for (const [name, file] of plan.indexMap) {
      const at = seen.get(name);
      if (at === undefined) throw new ColdstartError('CORRUPT_FILE', `pytorch_model.bin.index.json lists "${name}" in ${file} but no shard holds it`);
      if (basename(plan.files[at]!) !== file) throw new ColdstartError('CORRUPT_FILE', `pytorch_model.bin.index.json puts "${name}" in ${file} but it is in ${basename(plan.files[at]!)}`);
    }
    for (const name of seen.keys()) if (!plan.indexMap.has(name)) warnings.push(`tensor "${name}" is not listed in pytorch_model.bin.index.json; converted anyway`);
  }
  const { kept, dropped, overlapping } = dedupeAliases(entries, plan.tiedNames);
  checkAmplification(
    kept.map((e) => e.t),
    plan.input,
    plan.allowAmplification,
  );
  for (const g of overlapping) warnings.push(`tensors ${g.join(', ')} overlap in one storage but are different views; each is written separately`);
  const planned: PlannedTensor[] = kept.map((e) => {
    const outDtype = outDtypeFor(e.t.dtype, plan.dtype);
    return { name: e.name, source: e.source, t: e.t, outDtype, outBytes: e.t.numel * DTYPE_SIZES[outDtype] };
  });
  // Largest element size first keeps every tensor aligned (as the reference writer does); then source order
  // keeps reads sequential.
  planned.sort(
    (a, b) =>
      DTYPE_SIZES[b.outDtype] - DTYPE_SIZES[a.outDtype] ||
      a.source - b.source ||
      a.t.storage.offset + a.t.storageOffset * DTYPE_SIZES[a.t.dtype] - (b.t.storage.offset + b.t.storageOffset * DTYPE_SIZES[b.t.dtype]) ||
      (a.name < b.name ? -1 : 1),
  );
  const convertedDtype = planned.filter((p) => p.outDtype !== p.t.dtype).length;
  const keptDtype = plan.dtype ? planned.filter((p) => CASTABLE_FLOAT_DTYPES.has(p.t.dtype) && p.outDtype === p.t.dtype).length : 0;

  // ---- output layout
  let outDir: string;
  let stem: string;
  let finalTarget: string;
  if (plan.kind === 'directory') {
    finalTarget = resolve(plan.output ?? `${plan.input.replace(/\/+$/, '')}-safetensors`);
    if (finalTarget === plan.input) throw new ColdstartError('BAD_FLAG', `--output: must differ from the input directory ${plan.input}`, { hint: 'The input is never modified; choose a new directory.' });
    outDir = finalTarget;
    stem = 'model';
  } else {
    let out = plan.output ? resolve(plan.output) : '';
    const srcBase = basename(plan.input);
    const defaultName = /^pytorch_model\.bin$/.test(srcBase) ? 'model.safetensors' : `${srcBase.replace(/\.(bin|pt|pth|ckpt)$/i, '')}.safetensors`;
    if (!out) out = join(dirname(plan.input), defaultName);
    else if (plan.output!.endsWith('/') || plan.outputIsDirectory) out = join(out, defaultName);
    finalTarget = out;
    outDir = dirname(out);
    stem = basename(out).replace(/\.safetensors$/, '');
  }
  const shardSize = plan.shardSize ?? (plan.kind === 'directory' ? 5_000_000_000 : undefined);
  const shards: PlannedTensor[][] = [];
  if (shardSize === undefined) shards.push(planned);
  else {
    let cur: PlannedTensor[] = [];
    let size = 0;
    for (const p of planned) {
      if (cur.length > 0 && size + p.outBytes > shardSize) {
        shards.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(p);
      size += p.outBytes;
    }
    shards.push(cur);
  }
  const sharded = shards.length > 1;
  const metadata: Record<string, string> = { format: 'pt' };
  for (const [k, v] of Object.entries(dropped)) metadata[k] = v;

  return { planned, dropped, warnings, convertedDtype, keptDtype, finalTarget, outDir, stem, shards, sharded, metadata };
}

export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
  // Options a library caller passes are checked by their own names (the CLI has parsed its flags already).
  if (options.dtype !== undefined && targetDtype(options.dtype) !== options.dtype) throw invalidOption('dtype', 'F16, BF16 or F32', options.dtype);
  if (options.shardSize !== undefined) intOption('shardSize', options.shardSize, 1);
  const outputName = options.outputName ?? 'output';
  const total = new Stopwatch();
  const warn = options.warn ?? (() => {});
  const input = resolve(options.input);
  const inputs = resolveInput(input);
  const native = options.native ?? requireNative('coldstart convert');

  // ---- read: structure only
  const readSw = new Stopwatch();
  const cps: TorchCheckpoint[] = [];
  for (const f of inputs.files) {
    throwIfAborted(options.signal);
    cps.push(openTorchCheckpoint(f, { key: options.key }));
  }
  const readSeconds = readSw.elapsed();
  const outArg = options.output ? resolve(options.output) : '';
  const plan = planConversion({
    input,
    kind: inputs.kind,
    files: inputs.files,
    indexMap: inputs.indexMap,
    checkpoints: cps,
    dtype: options.dtype,
    tiedNames: options.tiedNames,
    shardSize: options.shardSize,
    output: options.output,
    outputIsDirectory: !!outArg && existsSync(outArg) && statSync(outArg).isDirectory(),
    allowAmplification: options.allowAmplification,
  });
  for (const w of plan.warnings) warn(w);
  const { planned, dropped, convertedDtype, keptDtype, finalTarget, outDir, stem, shards, sharded, metadata } = plan;
  let tmpDir: string | null = null;

  // The output guard: never the input, inside it or above it, never a link; an existing output only with --force,
  // and then only coldstart's own earlier output (a marked folder holding only what it wrote, or a safetensors file).
  const finalNames = sharded ? [...shards.map((_, i) => shardName(stem, i, shards.length)), `${stem}.safetensors.index.json`] : [basename(finalTarget)];
  const force = !!options.force;
  let replacing: string[] | null = null;
  if (inputs.kind === 'directory') {
    const isOwn = (p: string, st: Stats): string | null => {
      if (!st.isDirectory()) return 'is not a folder';
      const own = ownedFolder(p, 'convert');
      if (typeof own === 'string') return own;
      replacing = own.files;
      return null;
    };
    guardOutput(finalTarget, [input], { flag: outputName, force, isOwn });
  } else {
    for (const n of finalNames) guardOutput(join(outDir, n), [input], { flag: outputName, force, isOwn: ownConvertFile });
  }
  const parent = inputs.kind === 'directory' ? dirname(finalTarget) : outDir;
  try {
    makeDirs(parent);
  } catch (e) {
    // a component of the path is a file: say that, not "already exists"
    if (e instanceof ColdstartError && e.code === 'BAD_INPUT') {
      throw new ColdstartError('BAD_FLAG', `--output: ${parent} cannot be a directory: a file is in the way`, { hint: 'Choose another --output.' });
    }
    throw e;
  }
  const left = sweepLeftovers(parent);
  if (left.removed.length) warn(`removed ${left.removed.length} leftover(s) of interrupted coldstart runs in ${parent} (${formatBytes(left.bytes)}): ${left.removed.join(', ')}`);
  const files: OutFile[] = [];
  const writeDir = (() => {
    if (inputs.kind !== 'directory') return outDir;
    tmpDir = tempPathFor(finalTarget);
    trackTemp(tmpDir);
    try {
      mkdirSync(tmpDir);
    } catch (e) {
      untrackTemp(tmpDir);
      throw fromSystemError(e, dirname(finalTarget), 'write');
    }
    return tmpDir;
  })();
  const cleanup: string[] = [];
  const fsyncOut = options.fsync !== false;
  try {
    for (let i = 0; i < shards.length; i++) {
      const name = sharded ? shardName(stem, i, shards.length) : inputs.kind === 'directory' ? 'model.safetensors' : basename(finalTarget);
      const final = join(inputs.kind === 'directory' ? finalTarget : outDir, name);
      const tmp = inputs.kind === 'directory' ? join(writeDir, name) : tempPathFor(final);
      let built;
      try {
        built = buildHeader(
          shards[i]!.map((p) => ({ name: p.name, dtype: p.outDtype, shape: p.t.shape })),
          metadata,
        );
      } catch (e) {
        throw new ColdstartError('UNSUPPORTED', `cannot write the safetensors header: ${(e as Error).message}`);
      }
      files.push({ final, tmp, tensors: shards[i]!, header: built.bytes, offsets: built.offsets, dataSize: built.dataSize });
    }

    // ---- write
    const writeSw = new Stopwatch();
    const totalBytes = files.reduce((a, f) => a + f.dataSize, 0);
    let done = 0;
    let usedCfr = false;
    options.onProgress?.(0, totalBytes);
    for (const f of files) {
      throwIfAborted(options.signal);
      if (inputs.kind !== 'directory') {
        trackTemp(f.tmp);
        cleanup.push(f.tmp);
      }
      let fd = -1;
      try {
        fd = openSync(f.tmp, 'wx', 0o644);
        let off = 0;
        while (off < f.header.length) off += writeSync(fd, f.header, off, f.header.length - off);
        closeSync(fd);
        fd = -1;
      } catch (e) {
        if (fd >= 0) closeSync(fd);
        throw fromSystemError(e, f.final, 'write');
      }
      const ops = opsFor(f, inputs.files.length);
      const batches = batchOps(ops, Math.max(256 << 20, Math.ceil(totalBytes / 100)));
      for (let b = 0; b < batches.length; b++) {
        throwIfAborted(options.signal);
        let r;
        try {
          r = await native.fileioRun({
            mode: 'write',
            output: f.tmp,
            sources: inputs.files,
            ops: batches[b]!.ops,
            preallocate: b === 0 ? f.header.length + f.dataSize : 0,
            fsync: fsyncOut && b === batches.length - 1,
            writeback: fsyncOut,
          });
        } catch (e) {
          throw nativeFailure(e, f.final);
        }
        usedCfr ||= r.copyFileRange;
        done += batches[b]!.bytes;
        options.onProgress?.(done, totalBytes);
      }
      if (batches.length === 0 && fsyncOut) fsyncPath(f.tmp);
    }
    const writeSeconds = writeSw.elapsed();

    // ---- verify: the header must parse and describe exactly the plan; every tensor's bytes must match
    let verifySeconds: number | null = null;
    if (options.verify) {
      const vsw = new Stopwatch();
      for (const f of files) {
        throwIfAborted(options.signal);
        verifyHeader(f);
        const ops = opsFor(f, inputs.files.length);
        for (const batch of batchOps(ops, 256 << 20)) {
          let r;
          try {
            r = await native.fileioRun({ mode: 'verify', output: f.tmp, sources: inputs.files, ops: batch.ops });
          } catch (e) {
            throw nativeFailure(e, f.final);
          }
          if (r.mismatches.length > 0) {
            const bad = r.mismatches.map((i) => batch.names[i]).slice(0, 5);
            throw new ColdstartError('VERIFY_MISMATCH', `${f.final}: verification failed: ${r.mismatches.length} tensor(s) differ from the source (${bad.join(', ')})`, {
              hint: 'The output was not kept. Check the disk and memory of this machine, then convert again.',
            });
          }
        }
      }
      verifySeconds = vsw.elapsed();
    }

    // ---- index, carried files, rename into place
    let indexPath: string | null = null;
    if (sharded) {
      const weightMap: Record<string, string> = {};
      for (const f of files) for (const p of f.tensors) weightMap[p.name] = basename(f.final);
      const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      const doc = `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: sorted }, null, 2)}\n`;
      indexPath = join(inputs.kind === 'directory' ? finalTarget : outDir, `${stem}.safetensors.index.json`);
      const tmp = inputs.kind === 'directory' ? join(writeDir, basename(indexPath)) : tempPathFor(indexPath);
      if (inputs.kind !== 'directory') {
        trackTemp(tmp);
        cleanup.push(tmp);
      }
      writeSmall(tmp, indexPath, doc, fsyncOut);
      files.push({ final: indexPath, tmp, tensors: [], header: Buffer.alloc(0), offsets: [], dataSize: 0 });
    }
    const carried: string[] = [];
    if (inputs.kind === 'directory') {
      carryFiles(input, writeDir, inputs.weightFiles, inputs.linkRoots, carried, warn);
      markOwnedFolder(writeDir, 'convert', [...files.map((f) => basename(f.final)), ...carried]);
      replaceFolder(writeDir, finalTarget, replacing, warn);
      untrackTemp(writeDir);
      tmpDir = null;
    } else {
      for (const f of files) {
        try {
          renameSync(f.tmp, f.final);
        } catch (e) {
          throw fromSystemError(e, f.final, 'write');
        }
        untrackTemp(f.tmp);
      }
      cleanup.length = 0;
    }
    const dataFiles = files.filter((f) => f.final !== indexPath);
    const bytes = dataFiles.reduce((a, f) => a + f.dataSize, 0);
    const sourceBytes = inputs.files.reduce((a, f) => a + statSync(f).size, 0);
    const formats = new Set(cps.map((c) => c.format));
    const orders = new Set(cps.map((c) => c.byteorder));
    return {
      schema: 'coldstart/convert@1',
      input,
      inputKind: inputs.kind,
      output: inputs.kind === 'directory' ? finalTarget : sharded ? indexPath! : finalTarget,
      sources: inputs.files,
      key: cps[0]?.key ?? '',
      format: formats.size === 1 ? [...formats][0]! : 'mixed',
      byteorder: orders.size === 1 ? [...orders][0]! : 'mixed',
      files: dataFiles.map((f) => ({ path: f.final, tensors: f.tensors.length, bytes: f.header.length + f.dataSize })),
      index: indexPath,
      carried,
      tensors: planned.length,
      bytes,
      sourceBytes,
      droppedAliases: dropped,
      convertedDtype,
      keptDtype,
      dtype: options.dtype ?? null,
      verified: !!options.verify,
      copyFileRange: usedCfr,
      seconds: { read: readSeconds, write: writeSeconds, verify: verifySeconds, total: total.elapsed() },
      throughputBytesPerSecond: writeSeconds > 0 ? bytes / writeSeconds : 0,
    };
  } finally {
    for (const p of cleanup) {
      removeTemp(p);
    }
    if (tmpDir) {
      removeTemp(tmpDir);
    }
  }
}

function opsFor(f: OutFile, _nsources: number): Array<{ op: FileOp; name: string; bytes: number }> {
  return f.tensors.map((p, i) => ({
    name: p.name,
    bytes: p.outBytes,
    op: {
      src: p.source,
      srcOffset: p.t.storage.offset,
      srcBytes: p.t.storage.nbytes,
      dst: f.header.length + f.offsets[i]![0],
      srcDtype: p.t.dtype,
      dstDtype: p.outDtype,
      shape: p.t.shape,
      strides: p.t.strides,
      storageOffset: p.t.storageOffset,
      byteswap: p.t.storage.bigEndian && DTYPE_SIZES[p.t.dtype] > 1,
    },
  }));
}

function batchOps(ops: Array<{ op: FileOp; name: string; bytes: number }>, limit: number): Array<{ ops: FileOp[]; names: string[]; bytes: number }> {
  const out: Array<{ ops: FileOp[]; names: string[]; bytes: number }> = [];
  let cur = { ops: [] as FileOp[], names: [] as string[], bytes: 0 };
  for (const o of ops) {
    if (cur.ops.length > 0 && cur.bytes + o.bytes > limit) {
      out.push(cur);
      cur = { ops: [], names: [], bytes: 0 };
    }
    cur.ops.push(o.op);
    cur.names.push(o.name);
    cur.bytes += o.bytes;
  }
  if (cur.ops.length > 0) out.push(cur);
  return out;
}

function verifyHeader(f: OutFile): void {
  const h = readHeader(f.tmp);
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  if (h.tensors.length !== f.tensors.length) throw new ColdstartError('VERIFY_MISMATCH', `${f.final}: verification failed: header lists ${h.tensors.length} tensors, expected ${f.tensors.length}`);
  f.tensors.forEach((p, i) => {
    const t = byName.get(p.name);
    const [b, e] = f.offsets[i]!;
    if (!t || t.dtype !== p.outDtype || t.begin !== b || t.end !== e || t.shape.length !== p.t.shape.length || t.shape.some((d, k) => d !== p.t.shape[k])) {
      throw new ColdstartError('VERIFY_MISMATCH', `${f.final}: verification failed: header entry for "${p.name}" differs from the plan`);
    }
  });
}

function fsyncPath(p: string): void {
  const fd = openSync(p, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeSmall(path: string, shownAs: string, data: string, doFsync: boolean): void {
  let fd = -1;
  try {
    fd = openSync(path, 'wx', 0o644);
    const b = Buffer.from(data);
    let off = 0;
    while (off < b.length) off += writeSync(fd, b, off, b.length - off);
    if (doFsync) fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    throw fromSystemError(e, shownAs, 'write');
  }
}

/**
 * Puts the finished folder `fresh` at `target`. With `replacing` (the files of coldstart's own earlier output there,
 * as ownedFolder listed them), the old folder is renamed aside first, then the new one into place, then exactly the
 * listed files are removed from the old one — never recursively; if something else appeared in it meanwhile, it is
 * kept under a visible name and a warning says where.
 */
function replaceFolder(fresh: string, target: string, replacing: string[] | null, warn: (m: string) => void): void {
  if (!replacing) {
    try {
      renameSync(fresh, target);
    } catch (e) {
      throw fromSystemError(e, target, 'write');
    }
    return;
  }
  const aside = tempPathFor(target);
  try {
    renameSync(target, aside);
  } catch (e) {
    throw fromSystemError(e, target, 'replace');
  }
  try {
    renameSync(fresh, target);
  } catch (e) {
    try {
      renameSync(aside, target);
    } catch {
      // the earlier output stays at `aside`, named in the error below
    }
    throw fromSystemError(e, target, 'write');
  }
  if (!removeOwnedFolder(aside, replacing)) {
    const kept = `${target}.replaced-${process.pid}`;
    try {
      renameSync(aside, kept);
      warn(`${kept}: the earlier output folder held files coldstart did not write; they were kept there`);
    } catch {
      warn(`${aside}: the earlier output folder held files coldstart did not write; they were kept there`);
    }
  }
}

/** Whether an existing file at a convert output path is coldstart's own earlier output (a safetensors file or index). */
function ownConvertFile(p: string, st: Stats): string | null {
  if (!st.isFile()) return 'is not a regular file';
  if (p.endsWith('.safetensors.index.json')) {
    try {
      const doc = JSON.parse(readInputText(p, 'index'));
      return doc && typeof doc.weight_map === 'object' ? null : 'is not a safetensors index';
    } catch {
      return 'is not a safetensors index';
    }
  }
  try {
    readHeader(p);
    return null;
  } catch {
    return 'is not a safetensors file';
  }
}

/**
 * Copies one side file (config, tokenizer) opened as an untrusted input (regular files only, non-blocking), into a
 * new file of mode 0644 (less the umask): never the source's mode, so no setuid/setgid/executable bits travel.
 */
function copySideFile(src: string, dst: string): void {
  const { fd: inFd } = openInput(src, 'is a directory, expected a file');
  let outFd = -1;
  try {
    outFd = openSync(dst, 'wx', 0o644);
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(inFd, buf, 0, buf.length, null);
      if (n === 0) break;
      let off = 0;
      while (off < n) off += writeSync(outFd, buf, off, n - off);
    }
  } catch (e) {
    throw fromSystemError(e, dst, 'write');
  } finally {
    closeSync(inFd);
    if (outFd >= 0) closeSync(outFd);
  }
}

/**
 * Copies configs, tokenizer and other non-weight files. Links are followed only where they stay in the model
 * (the folder itself, or its Hub cache repo's blobs: `roots`); any other link is refused naming it.
 */
function carryFiles(src: string, dst: string, weights: Set<string>, roots: readonly string[], carried: string[], warn: (m: string) => void, rel = '', depth = 0): void {
  if (depth > 4) return;
  for (const name of readdirSync(join(src, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    if (depth === 0 && (weights.has(name) || name === '.git' || name === '.cache' || name === OWNED_MARKER || name.endsWith('.safetensors') || name === 'model.safetensors.index.json')) {
      if (name.endsWith('.safetensors') || name === 'model.safetensors.index.json') warn(`${join(src, r)}: existing safetensors file not carried over (replaced by the converted weights)`);
      continue;
    }
    const full = join(src, r);
    const l = lstatSync(full);
    if (l.isSymbolicLink()) {
      try {
        followModelLink(full, roots);
      } catch (e) {
        if (e instanceof ColdstartError && e.code === 'NOT_FOUND') {
          warn(`${full}: broken symlink, not carried over`);
          continue;
        }
        throw e;
      }
    }
    let st;
    try {
      st = statSync(full);
    } catch {
      warn(`${full}: broken symlink, not carried over`);
      continue;
    }
    if (st.isDirectory()) {
      if (l.isSymbolicLink()) continue;
      try {
        mkdirSync(join(dst, r));
      } catch (e) {
        throw fromSystemError(e, join(dst, r), 'write');
      }
      const n = carried.length;
      carryFiles(src, dst, weights, roots, carried, warn, r, depth + 1);
      if (carried.length === n) rmdirSync(join(dst, r)); // nothing carried from it: no empty folder in the output
    } else if (st.isFile()) {
      copySideFile(full, join(dst, r));
      carried.push(r);
    }
  }
}

/** What `coldstart profile [model]` profiles: an alias, a Hub repo id, a local directory or file, or the demo. */
import { join, resolve, basename } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { pathEntryExists, readInputText, statInput } from '../core/files.js';
import { describeSkipped, weightsAt } from '../load/weights.js';
import { findModel, MODELS, resolveRepoId, type ModelSpec } from '../models/table.js';
import { readHeader } from '../formats/safetensors.js';
import { DTYPE_SIZES, parseDtypeName, type Dtype } from '../formats/dtypes.js';
import { planSynthetic, type SyntheticFormat } from '../models/synthetic.js';
import { shellArg } from '../core/format.js';

export type TargetKind = 'demo' | 'alias' | 'repo' | 'dir' | 'file';

/**
 * The model a profile loads. A value: a step that learns more (the synthetic checkpoint written, the Hub's file
 * list, the download) returns a new Target.
 */
export interface Target {
  /** What the user typed (or `demo`). */
  readonly name: string;
  readonly kind: TargetKind;
  readonly spec?: ModelSpec;
  readonly repo?: string;
  readonly synthetic: boolean;
  readonly dir: string | null;
  readonly files: readonly string[];
  readonly format: SyntheticFormat | null;
  readonly dtype: Dtype | null;
  /** Weight bytes (tensor data), null until known. */
  readonly bytes: number | null;
  readonly parameters: number | null;
  /** What the weight resolver left out beside the files and why (describeSkipped), when anything. */
  readonly skipped?: string | null;
}

/**
 * The argument that names these same weights to prefetch, convert and warmup — what their resolver
 * (src/load/weights.ts resolveWeights) maps to the same files, shell-quoted, from the directory profile ran in: the
 * demo by name, a synthetic checkpoint by its folder (an alias would look in the HF cache), a path as typed, a
 * Hub model by its name (its snapshot in the HF cache). null when the weights are not on disk.
 */
export function weightsArg(t: Target): string | null {
  // `demo` names the safetensors demo; its .bin form (--format bin) by its folder.
  if (t.kind === 'demo' && t.format !== 'bin') return 'demo';
  if (t.synthetic) return t.dir ? shellArg(t.dir) : null;
  if (t.files.length === 0) return null;
  return shellArg(t.name);
}

/** The weight formats profile's floor reads: safetensors through the native loader, torch pickles by a host read. */
export const PROFILE_FORMATS: readonly SyntheticFormat[] = ['safetensors', 'bin'];

/** The local weights of a folder or file, by the one resolver (src/load/weights.ts), as profile's target fields. */
export function localWeights(path: string, shown?: string): Pick<Target, 'dir' | 'files' | 'format' | 'skipped'> {
  const w = weightsAt(path, { formats: PROFILE_FORMATS, shown });
  return { dir: w.dir, files: w.files, format: w.format as SyntheticFormat, skipped: describeSkipped(w) };
}

/** dtype (most bytes) and tensor bytes of safetensors files, from their headers only. */
export function describeSafetensors(files: readonly string[]): { dtype: Dtype | null; bytes: number; parameters: number } {
  const byDtype = new Map<Dtype, number>();
  let bytes = 0;
  let parameters = 0;
  for (const f of files) {
    const h = readHeader(f);
    for (const t of h.tensors) {
      const b = t.end - t.begin;
      bytes += b;
      parameters += b / DTYPE_SIZES[t.dtype];
      byDtype.set(t.dtype, (byDtype.get(t.dtype) ?? 0) + b);
    }
  }
  const dtype = [...byDtype.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
  return { dtype, bytes, parameters };
}

function dtypeFromConfig(dir: string): Dtype | null {
  try {
    // Regular file, size-capped: a FIFO or a huge config.json is ignored here, never read or blocked on.
    const c = JSON.parse(readInputText(join(dir, 'config.json'), 'model config', 1 << 20)) as { torch_dtype?: string; dtype?: string };
    return parseDtypeName(c.torch_dtype ?? c.dtype);
  } catch {
    return null;
  }
}

/** The target with format/dtype/bytes of its local weight files filled in (unchanged without files). */
export function describeFiles(t: Target): Target {
  if (t.files.length === 0) return t;
  const fileBytes = t.files.reduce((a, f) => a + statInput(f).size, 0);
  if (t.format === 'safetensors') {
    const d = describeSafetensors(t.files);
    return { ...t, dtype: d.dtype, bytes: d.bytes, parameters: d.parameters };
  }
  const dtype = t.dtype ?? (t.dir ? dtypeFromConfig(t.dir) : null);
  return { ...t, dtype, bytes: fileBytes, parameters: dtype ? Math.round(fileBytes / DTYPE_SIZES[dtype]) : null };
}

export interface TargetOptions {
  synthetic?: boolean;
  format?: SyntheticFormat;
  /** The synthetic checkpoint's dtype (default: the model's). */
  dtype?: Dtype;
}

/** Resolves the model argument; files of synthetic/remote targets are filled in later (prepare, download). */
export function resolveTarget(arg: string | undefined, cwd: string, opts: TargetOptions): Target {
  const name = arg ?? 'demo';
  const spec = findModel(name);
  const local = resolve(cwd, name);
  if (spec && (spec.alias === 'demo' || opts.synthetic || !pathEntryExists(local))) {
    const dtype = opts.dtype ?? spec.dtype;
    const synthetic = spec.alias === 'demo' || !!opts.synthetic;
    // Every repo in the alias table publishes safetensors; the download phase confirms it from the file list.
    const format = synthetic ? (opts.format ?? 'safetensors') : 'safetensors';
    const plan = planSynthetic(spec, format ?? 'safetensors', dtype);
    return {
      name,
      kind: spec.alias === 'demo' ? 'demo' : 'alias',
      spec,
      repo: spec.repo,
      synthetic,
      dir: null,
      files: [],
      format,
      dtype,
      bytes: plan.bytes,
      parameters: plan.parameters,
    };
  }
  if (opts.synthetic) {
    throw new ColdstartError('UNKNOWN_MODEL', `synthetic: needs a model alias, got ${JSON.stringify(name)}`, { hint: `Aliases: ${MODELS.map((m) => m.alias).join(', ')}.`, details: { option: 'synthetic' } });
  }
  // Anything at that path is the model: a symlink loop or a dangling link is refused naming it (exit 2), never
  // taken for a Hub repo id.
  if (pathEntryExists(local)) {
    const w = localWeights(local, local);
    const kind = statInput(local).isDirectory() ? 'dir' : 'file';
    return describeFiles({ name: kind === 'dir' ? name : basename(local), kind, synthetic: false, ...w, dtype: null, bytes: null, parameters: null });
  }
  const repo = resolveRepoId(name);
  if (repo) return { name, kind: 'repo', repo: repo.repo, synthetic: false, dir: null, files: [], format: null, dtype: null, bytes: null, parameters: null };
  throw new ColdstartError('UNKNOWN_MODEL', `unknown model ${JSON.stringify(name)}: not an alias, a Hub repo id (org/name), a directory or a weights file`, {
    hint: `Aliases: ${MODELS.map((m) => m.alias).join(', ')}.`,
  });
}

export function bytesPerParam(dtype: Dtype | null): number {
  return dtype ? DTYPE_SIZES[dtype] : 2;
}

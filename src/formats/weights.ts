/**
 * Which files of a model are its weights — the rules on names alone, no file system: the weight formats and
 * their extensions, trainer-state files that look like weights but are not, the sharded-checkpoint index
 * (`model.safetensors.index.json`, `pytorch_model.bin.index.json`) and which set of names a folder's listing
 * (or a Hub repo's file list) loads. src/load/weights.ts applies them to folders, files, aliases and the HF cache;
 * the download's default excludes and profile's download globs come from here too.
 */
import { ColdstartError } from '../core/errors.js';

/** Weight formats, in the order a folder holding several is read: safetensors, then torch pickles, GGUF, ONNX. */
export type WeightFormat = 'safetensors' | 'bin' | 'gguf' | 'onnx';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['safetensors', 'bin', 'gguf', 'onnx'];

/** File extensions of each format (`bin`: torch pickles, `torch.save` zip or legacy; ONNX: the model and its external data). */
export const WEIGHT_EXTENSIONS: Readonly<Record<WeightFormat, readonly string[]>> = {
  safetensors: ['.safetensors'],
  bin: ['.bin', '.pt', '.pth', '.ckpt'],
  gguf: ['.gguf'],
  onnx: ['.onnx', '.onnx_data', '.onnx.data'],
};

/** Formats that shard with an index, and the index name transformers writes (`save_pretrained`). */
export type IndexedFormat = 'safetensors' | 'bin';
export const WEIGHT_INDEX_NAMES: Readonly<Record<IndexedFormat, string>> = { safetensors: 'model.safetensors.index.json', bin: 'pytorch_model.bin.index.json' };
/** Without an index, files named like transformers' own (`model*.safetensors`, `pytorch_model*.bin`) are preferred over others of the format. */
const CANONICAL_PREFIX: Readonly<Record<IndexedFormat, string>> = { safetensors: 'model', bin: 'pytorch_model' };

/**
 * Weight formats that duplicate safetensors; the download skips them by default when the repo has safetensors
 * (huggingface_hub's own default is everything: this is coldstart's).
 */
export const DUPLICATE_WEIGHT_GLOBS = ['*.bin', '*.pt', '*.pth', '*.ckpt', '*.h5', '*.msgpack', '*.ot'];

/**
 * The download's one answer to "which files are duplicate weights": the globs skipped by default, and only when
 * the repo has safetensors (null otherwise). `cache ls` counts a file they skipped as skipped, not as missing.
 */
export function duplicateWeightGlobs(paths: readonly string[]): string[] | null {
  return paths.some((p) => p.endsWith('.safetensors')) ? DUPLICATE_WEIGHT_GLOBS : null;
}

/** What loading a model needs besides its weights (config, tokenizer, generation config), fetched with them. */
export const MODEL_SIDE_GLOBS = ['*.json', 'tokenizer*', '*.model', '*.txt'];

function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

/** The weight format a file name says, by extension; null for anything else (configs, tokenizers, indexes). */
export function weightFormatOf(name: string): WeightFormat | null {
  const n = baseName(name).toLowerCase();
  for (const f of WEIGHT_FORMATS) if (WEIGHT_EXTENSIONS[f].some((e) => n.endsWith(e) && n.length > e.length)) return f;
  return null;
}

/** The format a sharded-checkpoint index is for (`*.safetensors.index.json`, `*.bin.index.json`), or null. */
export function indexFormatOf(name: string): IndexedFormat | null {
  const n = baseName(name);
  if (n.endsWith('.safetensors.index.json')) return 'safetensors';
  if (n.endsWith('.bin.index.json')) return 'bin';
  return null;
}

/**
 * Why a file with a weight extension is not model weights: the Trainer's own state saved beside a checkpoint
 * (`training_args.bin`, `optimizer.pt`, `scheduler.pt`, `rng_state*.pth`, `scaler.pt`). Null for weights.
 */
export function notWeightsReason(name: string): string | null {
  return /^(training_args|optimizer|scheduler|rng_state|scaler)(?![a-z])/i.test(baseName(name)) ? 'trainer state saved beside the checkpoint, not model weights' : null;
}

export interface WeightIndex {
  /** tensor name → shard file name, as the index says. */
  weightMap: Map<string, string>;
  /** The distinct shard names, sorted. */
  shards: string[];
}

/**
 * Parses a sharded-checkpoint index (`{"metadata": …, "weight_map": {tensor: shard}}`). `where` names it in errors.
 * Only the JSON is checked here (CORRUPT_FILE): where a shard name may point is the caller's rule (safeJoin).
 */
export function parseWeightIndex(text: string, where: string): WeightIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ColdstartError('CORRUPT_FILE', `${where}: not valid JSON (${(e as Error).message})`);
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new ColdstartError('CORRUPT_FILE', `${where}: no "weight_map" object`);
  const weightMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== 'string' || file === '') throw new ColdstartError('CORRUPT_FILE', `${where}: weight_map["${tensor}"] is not a file name`);
    weightMap.set(tensor, file);
  }
  if (weightMap.size === 0) throw new ColdstartError('CORRUPT_FILE', `${where}: weight_map is empty`);
  return { weightMap, shards: [...new Set(weightMap.values())].sort() };
}

export interface Skipped {
  name: string;
  reason: string;
}

export interface WeightSelection {
  /** The format read; null when the listing holds no weights of an accepted format. */
  format: WeightFormat | null;
  /** The index to follow (its shards are the weights); null when there is none, or several (see `indexes`). */
  index: string | null;
  /** Every index that could be the one (transformers' own name wins when present): more than one is ambiguous. */
  indexes: string[];
  /** Without an index: the weight files, sorted. With one: the files of the format the index will narrow. */
  names: string[];
  /** Names with a weight extension that are not read, each with why. */
  skipped: Skipped[];
}

/**
 * Which names of one folder's listing are the weights, by name alone: the first format of `formats` (in
 * WEIGHT_FORMATS order) that has files or an index; within it the index when there is one (transformers' name
 * preferred; several others are left to the caller as `indexes`), else transformers-named files (`model*.safetensors`,
 * `pytorch_model*.bin`) when there are any, else every file of the format. Trainer state is never weights.
 * `names` are base names of one folder (sub-folders are not looked into).
 */
export function selectWeightNames(names: readonly string[], formats: readonly WeightFormat[] = WEIGHT_FORMATS): WeightSelection {
  const skipped: Skipped[] = [];
  const byFormat = new Map<WeightFormat, string[]>();
  const indexes = new Map<IndexedFormat, string[]>();
  for (const n of [...names].sort()) {
    const ix = indexFormatOf(n);
    if (ix) {
      indexes.set(ix, [...(indexes.get(ix) ?? []), n]);
      continue;
    }
    const f = weightFormatOf(n);
    if (!f) continue;
    const why = notWeightsReason(n);
    if (why) skipped.push({ name: n, reason: why });
    else byFormat.set(f, [...(byFormat.get(f) ?? []), n]);
  }
  const present = WEIGHT_FORMATS.filter((f) => byFormat.has(f) || indexes.has(f as IndexedFormat));
  const format = present.find((f) => formats.includes(f)) ?? null;
  for (const f of present) {
    if (f === format) continue;
    const reason = formats.includes(f) ? `${format} weights are here too and are read instead` : `${f} weights are not read here (${formats.join(', ')} only)`;
    for (const n of byFormat.get(f) ?? []) skipped.push({ name: n, reason });
  }
  if (!format) return { format: null, index: null, indexes: [], names: [], skipped };
  const files = byFormat.get(format) ?? [];
  if (format === 'safetensors' || format === 'bin') {
    const all = indexes.get(format) ?? [];
    const canonical = WEIGHT_INDEX_NAMES[format];
    const chosen = all.includes(canonical) ? [canonical] : all;
    if (chosen.length > 0) return { format, index: chosen.length === 1 ? chosen[0]! : null, indexes: chosen, names: files, skipped };
    const prefix = CANONICAL_PREFIX[format];
    const named = files.filter((n) => n.startsWith(prefix));
    if (named.length > 0 && named.length < files.length) {
      for (const n of files) if (!n.startsWith(prefix)) skipped.push({ name: n, reason: `not ${prefix}*: transformers-named ${format} files are here and are read instead` });
      return { format, index: null, indexes: [], names: named, skipped };
    }
  }
  return { format, index: null, indexes: [], names: files, skipped };
}

/** The download globs that fetch a selection's weights (by their extensions) and what loading them needs. */
export function weightGlobs(sel: Pick<WeightSelection, 'names'>): string[] {
  const exts = new Set(sel.names.map((n) => WEIGHT_EXTENSIONS[weightFormatOf(n)!].find((e) => n.toLowerCase().endsWith(e))!));
  return [...[...exts].sort().map((e) => `*${e}`), ...MODEL_SIDE_GLOBS];
}

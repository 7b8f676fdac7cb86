/**
 * THE weight-file resolver: given a file, a folder, a model alias (`demo`, `llama3-8b`) or a Hub repo id in the
 * HF cache → the weight files, their format, the index followed and what was skipped and why. The rules on
 * names are src/formats/weights.ts's (safetensors over .bin over GGUF over ONNX; the index when there is one;
 * trainer state is never weights); here they meet the file system: every file read must be a regular file (a
 * FIFO is refused, never opened), a shard an index names never leaves the index's folder (safeJoin), and a shard
 * it names must exist. profile (floor and wrap mode alike), prefetch and the loader all take their files from here.
 */
import { dirname, join, resolve } from 'node:path';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { listInputDir, pathEntryExists, readInputText, statInput, statRegularFile } from '../core/files.js';
import { safeJoin } from '../core/paths.js';
import { WEIGHT_EXTENSIONS, WEIGHT_FORMATS, indexFormatOf, parseWeightIndex, selectWeightNames, weightFormatOf, type WeightFormat } from '../formats/weights.js';
import { coldstartCacheDir, ensureSyntheticModel, planSynthetic, syntheticDir } from '../models/synthetic.js';
import { findModel, resolveRepoId } from '../models/table.js';
import { findCachedSnapshot } from '../cache/download.js';

export type { WeightFormat } from '../formats/weights.js';

type Env = Record<string, string | undefined>;

export interface WeightFiles {
  /** Absolute paths, sorted; each a regular file. */
  files: string[];
  /** Their format; null only for a named file of no known weight format taken as it is (`anyFile`). */
  format: WeightFormat | null;
  /** Sum of the files' sizes. */
  bytes: number;
  /** The folder they were found in (a folder target, an index's folder, a snapshot); null for one named file. */
  dir: string | null;
  /** The index that named them (absolute), or null. */
  index: string | null;
  /** path: a file or folder given; hf-cache: a repo's cached snapshot; synthetic: the built-in demo's checkpoint. */
  source: 'path' | 'hf-cache' | 'synthetic';
  /** Files with a weight extension that are not read, each with why (a duplicate format, not in the index, trainer state). */
  skipped: Array<{ path: string; reason: string }>;
}

export interface WeightsAtOptions {
  /** The formats the caller reads (default all, in WEIGHT_FORMATS order of preference). */
  formats?: readonly WeightFormat[];
  /** A named file of no known weight format is taken as it is (prefetch reads whatever file it is given). */
  anyFile?: boolean;
  /** How the target is named in messages (what the user typed); default the path. */
  shown?: string;
}

const extensions = (formats: readonly WeightFormat[]) => formats.flatMap((f) => WEIGHT_EXTENSIONS[f]).join(', ');

function hintFor(formats: readonly WeightFormat[], skipped: WeightFiles['skipped']): string {
  if (!formats.includes('bin') && skipped.some((s) => weightFormatOf(s.path) === 'bin')) return 'Convert .bin weights with `coldstart convert` first.';
  const other = skipped.find((s) => { const f = weightFormatOf(s.path); return f !== null && !formats.includes(f); });
  if (other) return `${other.path} is ${weightFormatOf(other.path)}, which is not read here (${formats.join(', ')}); \`coldstart prefetch\` and wrap mode (\`coldstart profile DIR -- SERVER\`) read every format.`;
  return 'Pass the folder that holds the model weights, or one weight file.';
}

/** The weights of a file or folder on disk (no aliases, no Hub ids): see the module comment. */
export function weightsAt(path: string, opts: WeightsAtOptions = {}): WeightFiles {
  const formats = opts.formats ?? WEIGHT_FORMATS;
  const p = resolve(path);
  const shown = opts.shown ?? path;
  const st = statInput(p);
  if (st.isDirectory()) return inFolder(p, shown, formats);
  if (!st.isFile()) throw new ColdstartError('BAD_INPUT', `${shown}: not a regular file or a folder (a FIFO or device is never read)`, { hint: 'Pass a weights file or the folder that holds them.' });
  const ix = indexFormatOf(p);
  if (ix && formats.includes(ix)) return fromIndex(p, ix, []);
  const f = ix ?? weightFormatOf(p);
  if (f && formats.includes(f)) return { files: [p], format: f, bytes: st.size, dir: null, index: null, source: 'path', skipped: [] };
  if (f) {
    throw new ColdstartError('UNSUPPORTED', `${shown}: ${f} weights${ix ? ' index' : ''}; only ${formats.join(', ')} weights are read here`, { hint: hintFor(formats, [{ path: p, reason: '' }]) });
  }
  if (opts.anyFile) return { files: [p], format: null, bytes: st.size, dir: null, index: null, source: 'path', skipped: [] };
  throw new ColdstartError('BAD_INPUT', `${shown}: not a weights file (expected ${extensions(formats)}, a *.safetensors.index.json or a folder)`, { hint: 'Pass a weights file or the folder that holds them.' });
}

function inFolder(dir: string, shown: string, formats: readonly WeightFormat[]): WeightFiles {
  const skipped: WeightFiles['skipped'] = [];
  // Folders named like weights (`x.safetensors/`) are not files: left out before the choice, said so.
  const names = listInputDir(dir, shown).filter((n) => {
    if (!indexFormatOf(n) && !weightFormatOf(n)) return true;
    if (!statInput(join(dir, n)).isDirectory()) return true;
    skipped.push({ path: join(dir, n), reason: 'a folder, not a file' });
    return false;
  });
  const sel = selectWeightNames(names, formats);
  if (sel.indexes.length > 1) throw new ColdstartError('AMBIGUOUS', `${shown}: several ${sel.format} indexes (${sel.indexes.join(', ')})`, { hint: 'Pass the index file you mean.' });
  skipped.push(...sel.skipped.map((s) => ({ path: join(dir, s.name), reason: s.reason })));
  if (sel.index) return fromIndex(join(dir, sel.index), sel.format as 'safetensors' | 'bin', skipped, sel.names);
  if (!sel.format || sel.names.length === 0) {
    throw new ColdstartError('NOT_FOUND', `${shown}: no weight files here (${extensions(formats)})`, { hint: hintFor(formats, skipped) });
  }
  const files = sel.names.map((n) => join(dir, n));
  const bytes = files.reduce((a, f) => a + statRegularFile(f).size, 0);
  return { files, format: sel.format, bytes, dir, index: null, source: 'path', skipped };
}

/** The shards an index names, in its folder; `others`: the format's files beside it (those it does not name are skipped). */
function fromIndex(indexPath: string, format: 'safetensors' | 'bin', skipped: WeightFiles['skipped'], others: readonly string[] = []): WeightFiles {
  // Regular file, size-capped before it is read: a FIFO or /dev/zero named like an index never blocks.
  const idx = parseWeightIndex(readInputText(indexPath, `${format} index`), indexPath);
  const dir = dirname(indexPath);
  const files = new Set<string>();
  // A shard name never leaves the index's folder (HOSTILE_FILE, exit 2).
  for (const [tensor, file] of idx.weightMap) files.add(safeJoin(dir, file, `${indexPath}: weight_map["${tensor}"]`));
  const sorted = [...files].sort();
  let bytes = 0;
  for (const f of sorted) {
    if (!pathEntryExists(f)) throw new ColdstartError('NOT_FOUND', `${f}: a shard ${indexPath} names is missing`, { hint: 'Download the complete model.' });
    bytes += statRegularFile(f).size;
  }
  const base = indexPath.slice(dir.length + 1);
  for (const n of others) if (!files.has(join(dir, n))) skipped.push({ path: join(dir, n), reason: `not named by ${base}` });
  return { files: sorted, format, bytes, dir, index: indexPath, source: 'path', skipped };
}

export interface ResolveWeightsOptions extends WeightsAtOptions {
  env: Env;
  /** Where a relative path is resolved (default the process's). */
  cwd?: string;
  /** Hub revision of a repo id in the HF cache (default main). */
  revision?: string;
  /**
   * The built-in `demo` resolves to its synthetic checkpoint in coldstart's cache, written there first when absent
   * (a few MB, like `profile demo` does); false: only when it is already there.
   */
  writeSynthetic?: boolean;
  signal?: AbortSignal;
}

/**
 * THE answer to "which files are the weights" for anything a user names: a path (file or folder) when anything is
 * there, else the built-in `demo` (its synthetic checkpoint), else a model alias or Hub repo id already in the
 * HF cache (its snapshot). Not cached: NOT_FOUND naming `coldstart cache`.
 */
export async function resolveWeights(target: string, opts: ResolveWeightsOptions): Promise<WeightFiles> {
  const p = resolve(opts.cwd ?? process.cwd(), target);
  const shown = opts.shown ?? target;
  // Anything at that path is the target: a symlink loop or dangling link is refused naming it (exit 2), not
  // mistaken for a Hub repo id.
  if (pathEntryExists(p)) return weightsAt(p, { ...opts, shown });
  const spec = findModel(target);
  if (spec?.alias === 'demo') {
    const cacheRoot = coldstartCacheDir(opts.env);
    let dir = syntheticDir(cacheRoot, planSynthetic(spec, 'safetensors'));
    if (opts.writeSynthetic !== false) dir = (await ensureSyntheticModel(spec, 'safetensors', cacheRoot, spec.dtype, { signal: opts.signal })).dir;
    else if (!pathEntryExists(join(dir, 'config.json'))) throw new ColdstartError('NOT_FOUND', `${target}: the built-in demo's synthetic checkpoint is not written yet`, { hint: 'Run `coldstart profile demo` once (it writes it), or pass a folder.' });
    return { ...weightsAt(dir, { ...opts, shown }), source: 'synthetic' };
  }
  const id = resolveRepoId(target);
  if (!id) throw fromSystemError(Object.assign(new Error('no such file or directory'), { code: 'ENOENT' }), target, 'read');
  const snap = findCachedSnapshot(id.repo, opts.revision, opts.env);
  if (!snap) {
    throw new ColdstartError('NOT_FOUND', `${target}: ${id.repo}${opts.revision ? `@${opts.revision}` : ''} is not in the Hugging Face cache and is not a path`, {
      hint: `Download it first (\`coldstart cache ${target}\`), or pass the directory that holds the weights.`,
    });
  }
  return { ...weightsAt(snap, { ...opts, shown }), source: 'hf-cache' };
}

/** One line on what a resolution left out, grouped by reason (for notes and assumptions); null when nothing was. */
export function describeSkipped(w: Pick<WeightFiles, 'skipped'>, max = 4): string | null {
  if (w.skipped.length === 0) return null;
  const byReason = new Map<string, string[]>();
  for (const s of w.skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.path.slice(s.path.lastIndexOf('/') + 1)]);
  return [...byReason]
    .map(([reason, names]) => `skipped ${names.slice(0, max).join(', ')}${names.length > max ? ` and ${names.length - max} more` : ''} (${reason})`)
    .join('; ');
}

/**
 * What coldstart may write over: the one output guard every command applies to a path it is about to create or
 * replace (convert's --output, the export files of every command), and coldstart's own output folders — marked when
 * made, so `--force` can tell its own earlier output from anything else and remove exactly what it wrote.
 */
import { lstatSync, readdirSync, rmdirSync, unlinkSync, writeFileSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { ColdstartError, fromSystemError } from './errors.js';
import { readInputText } from './files.js';
import { isInside, safeJoin } from './paths.js';

export interface GuardOptions {
  /** The flag the path came from, named in every refusal ("--output", "--export-json"). */
  flag: string;
  /** An existing output may be replaced (--force; exports always), but only when `isOwn` recognises it. */
  force?: boolean;
  /**
   * Whether the existing path is coldstart's own earlier output, which alone --force may replace: null when it
   * is, else why not (a phrase: "is not a safetensors file"). Without it nothing existing is replaced.
   */
  isOwn?: (path: string, st: Stats) => string | null;
}

/**
 * The output guard. Refuses (exit 2, naming the flag and what to do) an output path that is a symbolic link (not
 * ours to replace, and writing through it would land elsewhere), that is one of `inputs`, lies inside one or
 * contains one (symlinks resolved); an existing path unless `force`, and even then unless `isOwn` recognises it
 * as coldstart's own earlier output. Returns whether the path exists (and may be replaced).
 */
export function guardOutput(output: string, inputs: readonly string[], opts: GuardOptions): 'absent' | 'replace' {
  const out = resolve(output);
  let st: Stats | undefined;
  try {
    st = lstatSync(out);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // missing, or a parent is a file: nothing here to replace (making the folder says what is in the way)
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw fromSystemError(e, out, 'inspect');
  }
  if (st?.isSymbolicLink()) {
    throw new ColdstartError('BAD_FLAG', `${opts.flag}: ${out} is a symbolic link; coldstart does not replace a link or write through one`, {
      hint: 'Pass the real path, or remove the link first; nothing was changed.',
    });
  }
  for (const input of inputs) {
    const inp = resolve(input);
    const why = isInside(out, inp) ? (isInside(inp, out) ? 'is the input' : 'is inside the input') : isInside(inp, out) ? 'contains the input' : null;
    if (why) {
      throw new ColdstartError('BAD_FLAG', `${opts.flag}: ${out} ${why} ${inp}`, {
        hint: 'The input is never written to or removed: choose an output outside it (and not above it).',
      });
    }
  }
  if (!st) return 'absent';
  if (!opts.force) {
    throw new ColdstartError('OUTPUT_EXISTS', `${out}: already exists`, { hint: `Pass --force to replace coldstart's own earlier output, or choose another ${opts.flag}.` });
  }
  const notOurs = opts.isOwn ? opts.isOwn(out, st) : 'exists';
  if (notOurs !== null) {
    throw new ColdstartError('OUTPUT_EXISTS', `${opts.flag}: ${out} already exists and ${notOurs}; --force replaces only coldstart's own earlier output`, {
      hint: `Move it away yourself or choose another ${opts.flag}; nothing was changed.`,
    });
  }
  return 'replace';
}

/**
 * A recogniser for guardOutput's `isOwn`: a folder is coldstart's own output when it holds `file`, a JSON document
 * whose `schema` is `schema` (a snapshot image and its manifest.json), read by the one untrusted-file reader
 * (regular file only, at most `maxBytes`). Anything else — a link, a file, a folder without it — is not.
 */
export function folderWithManifest(file: string, schema: string, maxBytes: number): NonNullable<GuardOptions['isOwn']> {
  return (path, st) => {
    if (!st.isDirectory()) return 'is not a directory';
    let found: unknown;
    try {
      found = (JSON.parse(readInputText(join(path, file), file, maxBytes)) as { schema?: unknown } | null)?.schema;
    } catch {
      found = undefined;
    }
    return found === schema ? null : `holds no ${schema} ${file}`;
  };
}

/** The file that marks a folder as coldstart's output and lists what coldstart wrote into it. */
export const OWNED_MARKER = '.coldstart-output.json';
const OWNED_SCHEMA = 'coldstart/output@1';

/**
 * Marks `dir` (a folder coldstart has just filled, before it is renamed into place) as coldstart's own output:
 * `.coldstart-output.json` lists every file written (relative paths), so a later `--force` removes exactly those.
 */
export function markOwnedFolder(dir: string, command: string, files: readonly string[]): void {
  const doc = { schema: OWNED_SCHEMA, command, files: [...files].sort() };
  try {
    writeFileSync(join(dir, OWNED_MARKER), `${JSON.stringify(doc, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    throw fromSystemError(e, join(dir, OWNED_MARKER), 'write');
  }
}

/**
 * Whether `dir` is a folder coldstart wrote for `command` and still holds nothing else: its marker lists every
 * file in it (each name checked with safeJoin), and every sub-folder leads to a listed file; no links, no
 * special files. Returns the listed files, or why it is not ours (a phrase for guardOutput).
 */
export function ownedFolder(dir: string, command: string): { files: string[] } | string {
  let doc: { schema?: unknown; command?: unknown; files?: unknown };
  try {
    const st = lstatSync(join(dir, OWNED_MARKER), { throwIfNoEntry: false });
    if (!st?.isFile()) return `has no ${OWNED_MARKER} (coldstart marks the folders it writes)`;
    doc = JSON.parse(readInputText(join(dir, OWNED_MARKER), 'output marker', 4 << 20));
  } catch {
    return `has an unreadable ${OWNED_MARKER}`;
  }
  if (doc?.schema !== OWNED_SCHEMA || doc.command !== command || !Array.isArray(doc.files)) return `was not written by coldstart ${command}`;
  const files: string[] = [];
  try {
    for (const f of doc.files) {
      safeJoin(dir, f, join(dir, OWNED_MARKER));
      files.push(f as string);
    }
  } catch {
    return `has a ${OWNED_MARKER} naming a path outside it`;
  }
  const listed = new Set(files);
  const parents = new Set<string>();
  for (const f of files) for (let i = f.indexOf('/'); i >= 0; i = f.indexOf('/', i + 1)) parents.add(f.slice(0, i));
  const walk = (rel: string): string | null => {
    let names: string[];
    try {
      names = readdirSync(join(dir, rel));
    } catch (e) {
      return `cannot be listed (${fromSystemError(e, join(dir, rel), 'list').message})`;
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (r === OWNED_MARKER) continue;
      const st = lstatSync(join(dir, r));
      if (st.isDirectory() && parents.has(r)) {
        const why = walk(r);
        if (why) return why;
      } else if (!(st.isFile() && listed.has(r))) return `holds ${r}, which coldstart did not write`;
    }
    return null;
  };
  const why = walk('');
  return why ?? { files };
}

/**
 * Removes a folder `ownedFolder` recognised: each listed file, the marker, then the (now empty) folders — never
 * recursively, so anything that appeared meanwhile stays. Returns false when the folder could not be removed
 * whole (something else is in it).
 */
export function removeOwnedFolder(dir: string, files: readonly string[]): boolean {
  for (const f of [...files, OWNED_MARKER]) {
    try {
      unlinkSync(join(dir, f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(e, join(dir, f), 'remove');
    }
  }
  const dirs = new Set<string>();
  for (const f of files) for (let i = f.indexOf('/'); i >= 0; i = f.indexOf('/', i + 1)) dirs.add(f.slice(0, i));
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(join(dir, d));
    } catch {
      return false;
    }
  }
  try {
    rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/**
 * The part journal of a partial fetched in Range parts (parts.ts): which bytes of each part are on disk, so an
 * interrupted download resumes only the missing parts. Such a partial has holes, so it is never parked under the
 * `<etag>.incomplete` name that older huggingface_hub (and coldstart before parts) resume as a contiguous prefix:
 * it is parked as `<etag>.parts.incomplete` (partials.ts), and a partial without a journal is always a prefix.
 *
 * The journal sits in the partial's folder, named after the file's stem and its inode
 * (`<etag>.parts-<ino>.json`): a partial is renamed (adopted, parked) and linked, never copied, so the journal
 * needs no move of its own and two files never have to change name together. It is written (atomically) before
 * the first byte of a part lands, then as parts progress; it only ever claims bytes whose write completed, and it is
 * removed once every part is whole (the file is then a complete prefix). Correctness never depends on it: every
 * byte is hashed against the Hub's hash before the blob is committed.
 */
import { fstatSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { readInputText } from '../core/files.js';

export interface PartsJournal {
  size: number;
  partLen: number;
  /** Bytes on disk of each part, from its start. */
  written: number[];
}

/** A partial's stem: `<etag>` (cache) or `<b64>.<etag>` (--local-dir), whatever its own suffix. */
function stemOf(partial: string): string {
  return basename(partial).replace(/(?:\.cs-\d+-[0-9a-f]{8}|\.parts)?\.incomplete$/, '');
}

export function journalPath(partial: string, ino: number): string {
  return join(dirname(partial), `${stemOf(partial)}.parts-${ino}.json`);
}

/** The parked name of a partial with holes: `<stem>.parts.incomplete` beside `<stem>.incomplete`. */
export function partsParkedPath(parked: string): string {
  return parked.replace(/\.incomplete$/, '.parts.incomplete');
}

/**
 * The journal of the open partial `fd` when there is one that holds: the same size, whole parts laid out from 0, no
 * part claiming more than its length, and nothing claimed past the file's end. Anything else is no journal.
 */
export function readJournal(partial: string, fd: number, size: number): PartsJournal | null {
  const st = fstatSync(fd);
  let j: PartsJournal;
  try {
    // Through readInputText: a FIFO or device planted under the journal's name is no journal, never a wait or a flood.
    j = JSON.parse(readInputText(journalPath(partial, st.ino), 'parts journal')) as PartsJournal;
  } catch {
    return null;
  }
  if (j.size !== size || !Number.isSafeInteger(j.partLen) || j.partLen <= 0 || !Array.isArray(j.written)) return null;
  if (j.written.length !== Math.ceil(size / j.partLen)) return null;
  let extent = 0;
  for (let i = 0; i < j.written.length; i++) {
    const len = Math.min(j.partLen, size - i * j.partLen);
    const w = j.written[i];
    if (!Number.isSafeInteger(w) || w < 0 || w > len) return null;
    if (w > 0) extent = i * j.partLen + w;
  }
  return extent <= st.size ? j : null;
}

/** Whether the partial at `path` has a journal (it is a file with holes). */
export function hasJournal(path: string): boolean {
  try {
    return statSync(journalPath(path, statSync(path).ino)).isFile();
  } catch {
    return false;
  }
}

export function writeJournal(partial: string, ino: number, j: PartsJournal): void {
  writeFileAtomic(journalPath(partial, ino), JSON.stringify({ v: 1, ...j }));
}

/** Removes the journal of the partial at `path` (by its inode), if any. */
export function dropJournal(path: string, ino?: number): void {
  try {
    rmSync(journalPath(path, ino ?? statSync(path).ino), { force: true });
  } catch {
    /* the partial is gone: its journal was removed with it, or is left for `cache rm` */
  }
}

/**
 * `coldstart prefetch IMAGE`: a snapshot image read into the page cache ahead of its restore — its files through
 * load/prefetch.ts's `runPrefetch`, then the pages of the server's libraries its restore reads ahead
 * (./working-set.ts). The files are named and validated by the manifest as restore validates them.
 */
import { resolve } from 'node:path';
import { nowSeconds } from '../core/clock.js';
import { ColdstartError } from '../core/errors.js';
import { prefetchText, runPrefetch, type PrefetchOptions, type PrefetchResult } from '../load/prefetch.js';
import { MANIFEST, imageFile, isImageFolder, lstatOrNull, notRegularInImage, readManifestAndDigest, statOrNull, workingSetToRead, type Manifest } from './manifest.js';
import { addonReadRanges, readWorkingSet, workingSetLine, type WorkingSetDetail } from './working-set.js';

/** What `coldstart prefetch IMAGE` reports: the prefetch of the image's files and of the server's library pages. */
export interface ImagePrefetchRun extends PrefetchResult {
  target: string;
  source: 'snapshot-image';
  skipped: [];
  /** The server's library pages the manifest (or a restore's kept set) records, read after the image's files. */
  workingSet?: WorkingSetDetail;
}

/** `target` when it is a folder `coldstart snapshot` wrote (its manifest names the files), else null. */
export function imageToPrefetch(target: string, cwd?: string): string | null {
  const abs = resolve(cwd ?? process.cwd(), target);
  const st = statOrNull(abs);
  return st?.isDirectory() && isImageFolder(abs, st) === null ? abs : null;
}

/**
 * A snapshot image's files, manifest first, as its manifest names them (validated as restore validates them: no
 * name outside the folder; each a regular file, never followed through a link), so a node can hold an image in
 * the page cache before it restores it (restore from the page cache: 10.0 s instead of 16.2 s for an 8B server).
 */
function imageFiles(image: string, m: Manifest): string[] {
  const files = [imageFile(image, MANIFEST, image), ...m.files.map((f) => imageFile(image, f.name, `${image}: manifest files[].name`))];
  for (const p of files) {
    const st = lstatOrNull(p);
    if (!st) throw new ColdstartError('NOT_FOUND', `${p}: missing from the image`, { hint: 'Take the snapshot again.' });
    if (!st.isFile()) throw notRegularInImage(p, st);
  }
  return files;
}

/**
 * Reads `image` (a folder imageToPrefetch accepted) into the page cache: its files, then its server's library pages.
 * `target` is what the user named, as the report shows it.
 */
export async function prefetchImage(image: string, opts: Omit<PrefetchOptions, 'files'> & { stack?: string }, target = image): Promise<ImagePrefetchRun> {
  const { stack, ...prefetch } = opts;
  if (stack) throw new ColdstartError('BAD_FLAG', `--stack: ${target} is a snapshot image, whose restore imports nothing: there is no stack to read first`, { hint: 'Drop --stack.' });
  const { manifest: m, sha256 } = readManifestAndDigest(image);
  const r = await runPrefetch({ ...prefetch, files: imageFiles(image, m) });
  // Then the pages of its libraries its restore reads ahead: the restored server's own where a restore kept them,
  // else the manifest's.
  const toRead = workingSetToRead(image, m, sha256);
  if (toRead.note) r.notes.push(toRead.note);
  const workingSet = toRead.ws ? await readWorkingSet(toRead.ws, addonReadRanges, opts.signal ?? new AbortController().signal, nowSeconds) : undefined;
  if (workingSet?.error) r.notes.push(`reading the server's library pages failed: ${workingSet.error}`);
  return { ...r, target, source: 'snapshot-image', skipped: [], ...(workingSet ? { workingSet } : {}) };
}

/** The human lines of an image's prefetch: the files' lines, then the library pages'. */
export function imagePrefetchText(r: ImagePrefetchRun): string {
  return prefetchText(r, r.workingSet ? [workingSetLine(r.workingSet, '')] : []);
}

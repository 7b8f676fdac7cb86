/**
 * The files of an image on disk besides its manifest: where the server's output goes (IMAGE.log, beside the image,
 * for snapshot and restore alike), the guard on `-o` (the one output guard; --force replaces only an image), the
 * atomic replacement of an earlier image, and the log put back before a restore.
 */
import { constants, copyFileSync, openSync, renameSync } from 'node:fs';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { removeTemp, tempPathFor, trackTemp, untrackTemp } from '../core/atomic.js';
import { guardOutput } from '../core/outputs.js';
import { isImageFolder, lstatOrNull } from './manifest.js';

/** Where the server's stdout/stderr go: IMAGE.log beside the image, for snapshot and for restore alike. */
export function serverLogPath(image: string): string {
  return `${image}.log`;
}

export function symlinkedLog(path: string): ColdstartError {
  return new ColdstartError('BAD_INPUT', `${path}: a symbolic link; snapshot writes the server's log there and does not follow links`, { hint: 'Remove the link or choose another -o (nothing was touched).' });
}

/** Creates (truncates) the server's log for writing; a symbolic link there is refused, never followed. */
export function createServerLog(path: string): number {
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
 * The output guard for `-o`: an existing path is replaced only with --force, and only when it is an image (a folder
 * holding a coldstart/snapshot-image@1 manifest) — snapshot never removes a folder it did not write.
 */
export function guardImageOutput(output: string, force: boolean): 'absent' | 'replace' {
  return guardOutput(output, [], { flag: '-o', force, isOwn: isImageFolder });
}

/** Puts the finished image `tmp` at `output`, replacing an earlier image there (guarded again, moved aside, removed). */
export function replaceImage(tmp: string, output: string, force: boolean): void {
  if (!lstatOrNull(output)) {
    renameSync(tmp, output);
    untrackTemp(tmp);
    return;
  }
  guardImageOutput(output, force);
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
export function putLogBack(src: string, dst: string): number {
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

/**
 * Symlinks inside a model folder: followed only where they stay in the model. A folder may link inside itself,
 * and a Hugging Face cache snapshot (`…/models--org--name/snapshots/<rev>/`) links every file to
 * `../../blobs/<hash>` inside its repo folder; a link anywhere else (`tokenizer.json -> /etc/shadow`) is refused.
 */
import { realpathSync } from 'node:fs';
import { ColdstartError, fromSystemError } from './errors.js';
import { isInside } from './paths.js';

/** A Hub cache snapshot folder or a folder inside one: `<repo>/snapshots/<revision>[/sub]`, `<repo>` = `…/models--<id>`. */
const HF_SNAPSHOT = /^(.*\/(?:models|datasets|spaces)--[^/]+)\/snapshots\/[^/]+(?:\/.*)?$/;

/**
 * The folders links in the model folder `folder` may resolve into: the folder itself (its real path) and, for a
 * Hub cache snapshot or a sub-folder of one (a diffusers `unet/`), its repo folder (`models--org--name/`, holding
 * `blobs/`).
 */
export function modelLinkRoots(folder: string): string[] {
  let real: string;
  try {
    real = realpathSync(folder);
  } catch (e) {
    throw fromSystemError(e, folder, 'read');
  }
  const m = HF_SNAPSHOT.exec(real);
  return m ? [real, m[1]!] : [real];
}

/**
 * The real path of `path`, an entry of a model folder, when it resolves inside `roots` (modelLinkRoots);
 * otherwise refused with HOSTILE_FILE (exit 2) naming the link and where it points. A dangling link throws
 * NOT_FOUND (the caller may skip it).
 */
export function followModelLink(path: string, roots: readonly string[]): string {
  let real: string;
  try {
    real = realpathSync(path);
  } catch (e) {
    throw fromSystemError(e, path, 'read');
  }
  if (!roots.some((r) => isInside(real, r))) {
    throw new ColdstartError('HOSTILE_FILE', `${path}: a symbolic link to ${real}, outside the model folder; refused`, {
      hint: 'Links in a model folder may only point inside it (or, in the Hugging Face cache, to its blobs); copy the file in if it belongs to the model.',
    });
  }
  return real;
}

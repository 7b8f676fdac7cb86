import { existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface CacheScan {
  dir: string;
  exists: boolean;
  repos: number;
  /** Sum of blob sizes (each blob counted once, symlinks not followed). */
  sizeBytes: number;
}

function dirSize(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const p = join(dir, name);
    try {
      const st = lstatSync(p);
      if (st.isDirectory()) total += dirSize(p);
      else if (st.isFile()) total += st.size;
    } catch {
      /* vanished */
    }
  }
  return total;
}

/** Repos (`models--*`, `datasets--*`, `spaces--*`) and blob bytes in a huggingface_hub cache directory. */
export function scanHubCache(dir: string): CacheScan {
  if (!existsSync(dir)) return { dir, exists: false, repos: 0, sizeBytes: 0 };
  let repos = 0;
  let sizeBytes = 0;
  for (const name of readdirSync(dir)) {
    if (!/^(models|datasets|spaces)--/.test(name)) continue;
    repos++;
    sizeBytes += dirSize(join(dir, name, 'blobs'));
  }
  return { dir, exists: true, repos, sizeBytes };
}

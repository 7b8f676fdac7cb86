/**
 * Transparent huge pages, the system-wide mode (/sys/kernel/mm/transparent_hugepage/enabled: always, madvise or
 * never, the one in brackets is in force). restore --huge-pages sets `always` while CRIU restores the pages and puts
 * back what was there: CRIU fills the restored memory through 4 KiB page faults even where the server had huge pages.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export type ThpMode = 'always' | 'madvise' | 'never';
export const THP_ENABLED = '/sys/kernel/mm/transparent_hugepage/enabled';

/** The mode in force, or null when the kernel has no THP (or the file cannot be read). */
export function readThp(path = THP_ENABLED): ThpMode | null {
  try {
    const m = /\[(always|madvise|never)\]/.exec(readFileSync(path, 'utf8'));
    return m ? (m[1] as ThpMode) : null;
  } catch {
    return null;
  }
}

/** Sets the mode (root; throws the system error otherwise). */
export function writeThp(mode: ThpMode, path = THP_ENABLED): void {
  writeFileSync(path, mode);
}

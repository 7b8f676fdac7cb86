/**
 * Transparent huge pages, the system-wide mode (/sys/kernel/mm/transparent_hugepage/enabled: always, madvise or
 * never, the one in brackets is in force). `restore --huge-pages` sets `always` while CRIU restores the pages, `park
 * --huge-pages` while the driver moves GPU memory into host memory, and each puts back what was there: both otherwise
 * fill memory through 4 KiB page faults (H100, 2026-12-05: CRIU's restore 1.8-2.1x, park 1.4x, unpark 1.3x faster).
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

/** Reading and setting the mode: the real sysfs file, or a test's seam. */
export interface ThpControl {
  read(): ThpMode | null;
  write(mode: ThpMode): void;
}

/** A `--huge-pages` window: the mode found, the one in force during it, whether the first was put back, and a note. */
export interface HugePagesWindow {
  before: ThpMode | null;
  during: ThpMode | null;
  putBack: boolean;
  note: string | null;
}

/**
 * Opens a `--huge-pages` window: THP `always` while `what` runs (CRIU filling restored memory, the driver moving GPU
 * memory into host memory): both otherwise fault 4 KiB pages. What it did is said in `note`, never thrown — the step
 * goes on with the mode found.
 */
export function hugePagesOn(thp: ThpControl, what: string): HugePagesWindow {
  const before = thp.read();
  if (before === null) return { before, during: null, putBack: true, note: `--huge-pages: this kernel has no transparent huge pages (no ${THP_ENABLED}): ${what} with 4 KiB pages` };
  if (before === 'always') return { before, during: 'always', putBack: true, note: null };
  try {
    thp.write('always');
    return { before, during: 'always', putBack: false, note: null };
  } catch (e) {
    return { before, during: before, putBack: true, note: `--huge-pages: could not set transparent huge pages to always (${(e as Error).message}): ${what} with the ${before} mode` };
  }
}

/** The window as a report's details give it (the note goes to the warnings). */
export function hugePagesDetail(h: HugePagesWindow): { before: ThpMode | null; during: ThpMode | null; putBack: boolean } {
  return { before: h.before, during: h.during, putBack: h.putBack };
}

/** Closes the window: puts the mode found back (only when it was changed); a failure is said with the command that fixes it. */
export function hugePagesBack(thp: ThpControl, h: HugePagesWindow): void {
  if (h.putBack || h.before === null) return;
  try {
    thp.write(h.before);
    h.putBack = true;
  } catch (e) {
    h.note = `--huge-pages: transparent huge pages are still "always" (putting back "${h.before}" failed: ${(e as Error).message}); run: echo ${h.before} > ${THP_ENABLED}`;
  }
}

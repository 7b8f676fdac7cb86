/** What snapshot, restore, park and unpark report: their phases (a step not measured says why) and their tables. */
import type { PhaseSummary, Report } from '../core/report.js';
import type { ExitCodeValue } from '../core/errors.js';
import { formatDuration } from '../core/format.js';

export function phase(name: string, seconds: number | null, note?: string, reason?: string): PhaseSummary {
  return {
    name,
    status: seconds === null ? 'skipped' : 'ok',
    seconds,
    ...(reason ? { reason } : {}),
    ...(note ? { note } : {}),
    steps: [],
    metrics: {},
    share: null,
  };
}

/** A duration for a table cell; "—" when not measured. */
export const fmt = (s: number | null | undefined): string => (s === null || s === undefined ? '—' : formatDuration(s));

/** A three-column table: names left, the two value columns right-aligned. */
export function table(rows: Array<[string, string, string]>, head: [string, string, string]): string {
  const all = [head, ...rows];
  const w = [0, 1, 2].map((i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => `  ${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padStart(w[2]!)}`).join('\n');
}

/**
 * A capability's answer to its command: the report, how it reads for a human, and — where a verification found a
 * mismatch (restore's first answer unlike the snapshot's) — exit code 1, the code CI gates on (DESIGN.md).
 */
export interface Reported {
  report: Report;
  human: () => string;
  exitCode?: ExitCodeValue;
}

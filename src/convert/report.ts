/** A conversion as a report: read, write and verify as phases (the total is its wall clock), and its human lines. */
import { relative } from 'node:path';
import { skippedPhase, type PhaseResult } from '../core/phases.js';
import { newReport, summarizeRuns, type Report } from '../core/report.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import type { Style } from '../core/output.js';
import type { ConvertResult } from './convert.js';

function phase(name: string, seconds: number, note: string, metrics: PhaseResult['metrics'] = {}): PhaseResult {
  return { name, status: 'ok', seconds, note, steps: [], metrics };
}

/** The `coldstart/convert@1` document of a conversion, with the warnings it gave. */
export function convertReport(result: ConvertResult, warnings: readonly string[]): Report {
  const phases = [
    phase('read', result.seconds.read, `${result.sources.length} checkpoint file(s), structure only`),
    phase('write', result.seconds.write, `${formatBytes(result.bytes)} at ${formatRate(result.throughputBytesPerSecond)}`, { bytes: result.bytes, throughputBytesPerSecond: result.throughputBytesPerSecond }),
    // Without --verify the check is left out by choice: outside the total, never missing from it.
    result.seconds.verify === null ? skippedPhase('verify', 'not requested (--verify)', true) : phase('verify', result.seconds.verify, 'every tensor re-read and compared with the source'),
  ];
  // The total is the conversion's wall clock, as in the human line: what no phase explains is shown as such.
  const explained = result.seconds.read + result.seconds.write + (result.seconds.verify ?? 0);
  phases.push(phase('unexplained', Math.max(0, result.seconds.total - explained), 'planning, renames into place, carried-over files'));
  const report = newReport('convert');
  const sum = summarizeRuns([phases]);
  report.phases = sum.phases;
  report.total = sum.total;
  report.target = { input: result.input, output: result.output };
  report.warnings.push(...warnings);
  const { schema: _schema, ...details } = result;
  report.details = details;
  return report;
}

/** What --dtype did: tensors cast, and those already in that dtype kept as they were (never "0 converted"). */
export function dtypeLine(r: Pick<ConvertResult, 'dtype' | 'convertedDtype' | 'keptDtype'>): string {
  const d = (r.dtype ?? '').toLowerCase();
  if (r.convertedDtype === 0) return r.keptDtype > 0 ? `all ${r.keptDtype} floating tensor(s) already ${d}: kept as is` : `no floating tensors to convert to ${d}`;
  const cast = `${r.convertedDtype} floating tensor(s) converted to ${d}`;
  return r.keptDtype > 0 ? `${cast}; ${r.keptDtype} already ${d}: kept as is` : cast;
}

/** What was converted, how fast, what changed on the way; paths relative to `cwd` when below it. */
export function convertText(r: ConvertResult, cwd: string, s: Style): string {
  const rel = (p: string) => {
    const x = relative(cwd, p);
    return x && !x.startsWith('..') ? x : p;
  };
  const lines: string[] = [];
  const nfiles = r.files.length;
  lines.push(
    `${s.green('converted')} ${rel(r.input)} → ${rel(r.output)}: ${r.tensors} tensors, ${formatBytes(r.bytes)} in ${nfiles} file${nfiles === 1 ? '' : 's'}${r.key ? ` (weights from key "${r.key}")` : ''}${r.verified ? `, ${s.green('verified')}` : ''}`,
  );
  const t = r.seconds;
  lines.push(
    `  read ${formatDuration(t.read)} · write ${formatDuration(t.write)} (${formatRate(r.throughputBytesPerSecond)}${r.copyFileRange ? ', copy_file_range' : ''})${t.verify !== null ? ` · verify ${formatDuration(t.verify)}` : ''} · total ${formatDuration(t.total)}`,
  );
  if (r.dtype) lines.push(`  ${dtypeLine(r)}`);
  if (r.byteorder === 'big') lines.push('  big-endian checkpoint: data byteswapped to little-endian');
  const dropped = Object.entries(r.droppedAliases);
  if (dropped.length) lines.push(`  shared tensors written once: ${dropped.map(([a, b]) => `${a} → ${b}`).join(', ')} (recorded in __metadata__)`);
  if (nfiles > 1) for (const f of r.files) lines.push(`  ${rel(f.path)}  ${f.tensors} tensors, ${formatBytes(f.bytes)}`);
  if (r.carried.length) lines.push(`  carried over: ${r.carried.join(', ')}`);
  return lines.join('\n');
}

import Table from 'cli-table3';
import type { Report, PhaseSummary } from '../report.js';
import type { BudgetResult } from '../budgets.js';
import type { Style } from '../output.js';
import { formatDuration, formatPercent } from '../format.js';

function statusText(p: PhaseSummary, s: Style): string {
  switch (p.status) {
    case 'ok':
      return s.green('ok');
    case 'estimated':
      return s.cyan('estimated');
    case 'skipped':
      return s.yellow('skipped');
    case 'failed':
      return s.red('failed');
  }
}

function noteText(p: PhaseSummary): string {
  if (p.status === 'skipped') return p.reason ?? '';
  if (p.status === 'failed') return p.error ? `${p.error.code}: ${p.error.message}` : '';
  return p.note ?? '';
}

export function statsLine(st: { mean: number; stddev: number; min: number; max: number; n: number }): string {
  return `${formatDuration(st.mean)} ± ${formatDuration(st.stddev)}  (${formatDuration(st.min)} … ${formatDuration(st.max)}, ${st.n} runs)`;
}

/** The total as text: a time (± σ over runs), or "incomplete" with the known part, never a bare 0 s. */
export function totalText(report: Pick<Report, 'total'>): string {
  const t = report.total;
  if (t.seconds === null) return t.measuredSeconds ? `incomplete (≥ ${formatDuration(t.measuredSeconds)})` : 'incomplete';
  return t.stats ? `${formatDuration(t.seconds)} ± ${formatDuration(t.stats.stddev)}` : formatDuration(t.seconds);
}

/**
 * THE verdict in human output, one line per budget in the evaluator's words, for every command (printed by
 * core/emit.ts after the command's own output): ✓ met, ✗ exceeded / failed / not measured, ? not measured but
 * accepted by --allow-unmeasured.
 */
export function verdictLines(budgets: readonly BudgetResult[], style: Style): string[] {
  return budgets.map((b) => `${b.status === 'ok' ? style.green('✓') : b.status === 'unmeasured' && b.allowed ? style.yellow('?') : style.red('✗')} ${b.message}`);
}

/** Lines a note cell may take: the why and the fix go once, below the table. */
export const MAX_CELL_LINES = 3;

/**
 * Word-wraps text at `width` columns (newlines kept). A word longer than a line (a path) is never cut with "…":
 * it is broken after a `/` (else anywhere) and continues on the next line, whole.
 */
export function wrapText(text: string, width: number): string[] {
  const w = Math.max(8, width);
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    for (let word of para.split(/ +/).filter(Boolean)) {
      if (line && line.length + 1 + word.length <= w) {
        line += ` ${word}`;
        continue;
      }
      if (line) out.push(line);
      line = '';
      while (word.length > w) {
        const slash = word.lastIndexOf('/', w - 1);
        const cut = slash > w / 3 ? slash + 1 : w;
        out.push(word.slice(0, cut));
        word = word.slice(cut);
      }
      line = word;
    }
    out.push(line);
  }
  return out;
}

/** The head of a long note: up to its first clause boundary (": ", "; ", " (", ". "), for the cell. */
function headOf(text: string): string {
  const m = /: |; | \(|\. | — /.exec(text);
  return m && m.index >= 6 ? text.slice(0, m.index) : text;
}

/**
 * The notes below the table, each once: a cell whose note takes more than MAX_CELL_LINES lines, or that repeats in
 * several rows, shows its head and `[n]`; note n holds the whole text (and with `verbose`, the long form: an error's
 * own words, the full why).
 */
class Notes {
  readonly list: Array<{ text: string; detail?: string }> = [];

  constructor(
    private readonly width: number,
    private readonly verbose: boolean,
    private readonly repeated: ReadonlySet<string>,
  ) {}

  cell(text: string, detail?: string): string {
    const lines = wrapText(text, this.width);
    const long = lines.length > MAX_CELL_LINES || (this.repeated.has(text) && lines.length > 1);
    if (!long) {
      if (!detail || !this.verbose) return lines.join('\n');
      const n = this.ref(text, detail);
      const marked = wrapText(`${text} [${n}]`, this.width);
      return (marked.length > MAX_CELL_LINES ? [...lines.slice(0, MAX_CELL_LINES - 1), `see note [${n}]`] : marked).join('\n');
    }
    const n = this.ref(text, detail);
    let head = wrapText(`${headOf(text)} [${n}]`, this.width);
    if (head.length > MAX_CELL_LINES) head = [...head.slice(0, MAX_CELL_LINES - 1), `see note [${n}]`];
    return head.join('\n');
  }

  private ref(text: string, detail?: string): number {
    const i = this.list.findIndex((x) => x.text === text);
    if (i >= 0) return i + 1;
    this.list.push({ text, ...(detail && this.verbose ? { detail } : {}) });
    return this.list.length;
  }

  lines(style: Style): string[] {
    if (this.list.length === 0) return [];
    return ['', style.bold('notes'), ...this.list.flatMap((x, i) => [`[${i + 1}] ${x.text}`, ...(x.detail ? [style.dim(`    ${x.detail}`)] : [])])];
  }
}

export interface HumanOptions {
  /** The terminal's width (default 100). */
  width?: number;
  /** The long form of notes (an error's own words, the full why) below the table. */
  verbose?: boolean;
}

/**
 * The phase table (phase, time, share of total, status, note) with sub-steps indented beneath their phase. A note
 * cell takes at most MAX_CELL_LINES lines; longer or repeated notes go once below the table, numbered.
 */
export function renderHuman(report: Report, style: Style, opts: HumanOptions | number = {}): string {
  const { width = 100, verbose = false } = typeof opts === 'number' ? { width: opts } : opts;
  const lines: string[] = [];
  const rows: Array<{ cells: [string, string, string, string]; note: string; detail?: string; dim?: boolean }> = [];
  for (const p of report.phases) {
    const time = p.seconds === null ? '—' : p.stats ? `${formatDuration(p.seconds)} ± ${formatDuration(p.stats.stddev)}` : formatDuration(p.seconds);
    rows.push({ cells: [p.name, time, p.share === null ? '' : formatPercent(p.share), statusText(p, style)], note: noteText(p), detail: p.detail });
    for (const st of p.steps) rows.push({ cells: [`  └ ${st.name}`, formatDuration(st.seconds), '', ''], note: st.note ?? '', dim: true });
  }
  const tot = report.total;
  rows.push({ cells: [style.bold('total'), style.bold(totalText(report)), '', ''], note: tot.seconds === null ? `not measured: ${(tot.missing ?? []).join(', ')}` : '' });
  // The note column takes what the other columns leave of the width (each padded by 2, 6 borders).
  const visible = (x: string) => x.replace(/\u001b\[[0-9;]*m/g, '').length;
  const others = [0, 1, 2, 3].reduce((a, i) => a + Math.max(visible(['phase', 'time', 'share', 'status'][i]), ...rows.map((r) => visible(r.cells[i]))) + 2, 6);
  const noteWidth = Math.max(24, Math.min(70, width - others));
  const table = new Table({
    head: ['phase', 'time', 'share', 'status', 'note'].map((h) => style.bold(h)),
    style: { head: [], border: [] },
    // No rule between rows: one line per phase or step keeps the table compact in terminals and CI logs.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    colWidths: [null, null, null, null, noteWidth] as unknown as number[],
    // Cells are wrapped here (wrapText: a path is never cut with "…").
    wordWrap: false,
  });
  const texts = rows.map((r) => r.note).filter(Boolean);
  const repeated = new Set(texts.filter((t, i) => texts.indexOf(t) !== i));
  const notes = new Notes(noteWidth - 2, verbose, repeated);
  for (const r of rows) {
    const note = notes.cell(r.note, r.detail);
    table.push(r.dim ? [...r.cells.map((c) => (c ? style.dim(c) : c)), note.split('\n').map((l) => style.dim(l)).join('\n')] : [...r.cells, note]);
  }
  lines.push(table.toString());
  lines.push(...notes.lines(style));
  if (tot.stats) lines.push(`total: ${statsLine(tot.stats)}`);
  if (report.findings.length > 0) {
    lines.push('', style.bold('findings'));
    report.findings.forEach((f, i) => lines.push(`${i + 1}. ${f.message}${f.command ? style.dim(`  → ${f.command}`) : ''}`));
  }
  return lines.join('\n');
}

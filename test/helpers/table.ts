/** Reads the phase table a human report prints: its rows, each with its cells' lines (cli-table3 box drawing). */
export interface TableRow {
  cells: string[][];
}

/** The rows of the first box table in `text`; a row goes on while its first cell is blank on the next line. */
export function tableRows(text: string): TableRow[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('┌'));
  const end = lines.findIndex((l, i) => i > start && l.startsWith('└'));
  if (start < 0 || end < 0) return [];
  const rows: TableRow[] = [];
  for (const l of lines.slice(start + 1, end)) {
    const cells = l.split('│').slice(1, -1).map((c) => c.trim());
    if (cells[0] !== '' || rows.length === 0) rows.push({ cells: cells.map((c) => (c ? [c] : [])) });
    else cells.forEach((c, i) => c && rows[rows.length - 1].cells[i].push(c));
  }
  return rows;
}

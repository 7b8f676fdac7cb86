/**
 * Splitting a server's output into lines without ever rescanning: each chunk is searched for newlines once,
 * the unfinished line is kept as a list of pieces (joined only when its newline arrives) and capped, so a
 * 64 MB line without a newline costs one pass over its bytes and at most `maxLineChars` of memory.
 */
export class LineSplitter {
  private pieces: string[] = [];
  private pendingChars = 0;
  private droppedChars = 0;
  /** Characters searched for a newline so far (equals characters received: the linearity the tests check). */
  scannedChars = 0;

  constructor(private readonly maxLineChars = 65536) {}

  /** Feeds a chunk; returns the lines it completed (without the newline and a trailing CR). */
  push(chunk: string): string[] {
    const out: string[] = [];
    let from = 0;
    for (;;) {
      const i = chunk.indexOf('\n', from);
      this.scannedChars += (i < 0 ? chunk.length : i + 1) - from;
      if (i < 0) {
        this.keep(chunk.slice(from));
        return out;
      }
      this.keep(chunk.slice(from, i));
      out.push(this.take());
      from = i + 1;
    }
  }

  /** The unfinished last line, if any (at end of stream). */
  flush(): string[] {
    return this.pendingChars > 0 || this.droppedChars > 0 ? [this.take()] : [];
  }

  private keep(s: string): void {
    if (s.length === 0) return;
    const room = this.maxLineChars - this.pendingChars;
    if (room >= s.length) {
      this.pieces.push(s);
      this.pendingChars += s.length;
    } else {
      if (room > 0) {
        this.pieces.push(s.slice(0, room));
        this.pendingChars += room;
      }
      this.droppedChars += s.length - Math.max(0, room);
    }
  }

  private take(): string {
    let line = this.pieces.length === 1 ? this.pieces[0]! : this.pieces.join('');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (this.droppedChars > 0) line += ` …[${this.droppedChars} more characters not kept]`;
    this.pieces = [];
    this.pendingChars = 0;
    this.droppedChars = 0;
    return line;
  }
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/g;

/**
 * The text rules match against: ANSI colour removed, and for JSON log lines (TGI --json-output, old llama.cpp
 * server) "target: message" / "function: msg" so the same rules read both formats.
 */
export function normalizeLine(raw: string): string {
  let s = raw.includes('\x1b') ? raw.replace(ANSI, '') : raw;
  if (s.endsWith('\r')) s = s.slice(0, -1);
  if (s.length > 1 && s.length < 1 << 20 && s.charCodeAt(0) === 123 /* { */) {
    try {
      const o = JSON.parse(s) as Record<string, unknown>;
      const fields = o.fields as Record<string, unknown> | undefined;
      const msg = (typeof fields?.message === 'string' ? fields.message : undefined) ?? (typeof o.message === 'string' ? o.message : undefined) ?? (typeof o.msg === 'string' ? o.msg : undefined);
      if (msg !== undefined) {
        const who = typeof o.target === 'string' ? o.target : typeof o.function === 'string' ? o.function : undefined;
        return `${who ? `${who}: ` : ''}${msg.replace(/\s+$/, '')}`;
      }
    } catch {
      /* not JSON after all */
    }
  }
  return s;
}

import { ColdstartError, isColdstartError } from './errors.js';
import { nowSeconds } from './clock.js';
import { formatBytes, formatDuration, formatRate } from './format.js';

/** What the CLI needs of a process; tests pass a fake one and run the CLI in-process. */
export interface WritableLike {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}
export interface ProcessLike {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd(): string;
  stdout: WritableLike;
  stderr: WritableLike;
  exitCode?: number | string | undefined;
  on?(event: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
  off?(event: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
}

export interface GlobalOptions {
  json: boolean;
  quiet: boolean;
  color: boolean;
  debug: boolean;
  /** The long form of notes (an error's own words, the full why) below the table. */
  verbose?: boolean;
}

export interface Spinner {
  update(text: string): void;
  succeed(text?: string): void;
  fail(text?: string): void;
  stop(): void;
}

const NOOP_SPINNER: Spinner = { update() {}, succeed() {}, fail() {}, stop() {} };

/** A long step's progress line: bytes done of a total, with rate and ETA. */
export interface Progress {
  update(done: number, total: number): void;
  /** What the step is doing now, when it has no bytes to count (a Python process's events, a probe). */
  say(text: string): void;
  /** Clears the line. */
  end(): void;
}

const NOOP_PROGRESS: Progress = { update() {}, say() {}, end() {} };

/** ANSI styling that turns itself off: --no-color, NO_COLOR, a non-TTY stdout or TERM=dumb. */
export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}
function makeStyle(on: boolean): Style {
  const w = (a: number, b: number) => (s: string) => (on ? `\u001b[${a}m${s}\u001b[${b}m` : s);
  return { bold: w(1, 22), dim: w(2, 22), red: w(31, 39), green: w(32, 39), yellow: w(33, 39), cyan: w(36, 39) };
}

export function colorEnabled(proc: ProcessLike, flag: boolean): boolean {
  if (!flag) return false;
  const env = proc.env;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0') return true;
  if (env.TERM === 'dumb') return false;
  return proc.stdout.isTTY === true;
}

/**
 * The only way commands print. Human text → stdout (nothing in --json mode; nothing but results in --quiet);
 * warnings and errors → stderr; spinners → stderr, only on a TTY and never in CI; --json → exactly one document.
 */
export class Output {
  readonly style: Style;
  private jsonWritten = false;
  /** The progress line drawn on stderr now, if any: other output clears it first and draws it again after. */
  private bar: string | null = null;

  constructor(
    readonly proc: ProcessLike,
    readonly opts: GlobalOptions,
  ) {
    this.style = makeStyle(colorEnabled(proc, opts.color));
  }

  get json(): boolean {
    return this.opts.json;
  }

  /** True when a spinner or a redrawn progress line may be shown. */
  get interactive(): boolean {
    const env = this.proc.env;
    // A terminal that reports 0 columns (seen under `script`) makes ora redraw forever: treat it as non-interactive.
    const cols = this.proc.stderr.columns;
    return this.proc.stderr.isTTY === true && (cols === undefined || cols > 0) && !this.opts.quiet && !this.opts.json && !env.CI && env.TERM !== 'dumb';
  }

  /** Main human output (tables, results). Suppressed in --json mode. */
  print(text = ''): void {
    if (this.opts.json) return;
    this.say(this.proc.stdout, text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Secondary human output (hints, progress lines). Suppressed by --quiet and --json. */
  info(text: string): void {
    if (this.opts.quiet || this.opts.json) return;
    this.say(this.proc.stdout, text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Plain periodic progress for non-TTY runs, on stderr; suppressed by --quiet. */
  progressLine(text: string): void {
    if (this.opts.quiet) return;
    this.say(this.proc.stderr, `${text}\n`);
  }

  warn(text: string): void {
    if (this.opts.quiet) return;
    this.say(this.proc.stderr, `${this.style.yellow('warning:')} ${text}\n`);
  }

  debug(text: string): void {
    if (this.opts.debug) this.proc.stderr.write(`${this.style.dim(`debug: ${text}`)}\n`);
  }

  /** Writes the single JSON document of this run. A second call is a programming error. */
  writeJson(doc: unknown): void {
    if (this.jsonWritten) throw new ColdstartError('INTERNAL', 'a second JSON document was about to be written');
    this.jsonWritten = true;
    this.proc.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  }

  get jsonDone(): boolean {
    return this.jsonWritten;
  }

  /** One line naming what went wrong, then what to do; the stack only with --debug. */
  error(err: unknown): void {
    const e = isColdstartError(err) ? err : null;
    const msg = e ? e.message : err instanceof Error ? err.message : String(err);
    this.draw(null); // an error ends the step a progress line was drawn for
    this.proc.stderr.write(`${this.style.red('coldstart: error:')} ${msg}\n`);
    if (e?.hint) this.proc.stderr.write(`  ${e.hint}\n`);
    if (this.opts.debug && err instanceof Error && err.stack) this.proc.stderr.write(`${err.stack}\n`);
    if (this.opts.json && !this.jsonWritten) {
      const body = e ? e.toJSON() : { code: 'INTERNAL', message: msg, exitCode: 3 };
      this.writeJson({ schema: 'coldstart/error@1', error: body });
    }
  }

  /** A spinner on stderr when interactive; a no-op otherwise (CI logs stay clean). ora is loaded lazily. */
  async spinner(text: string): Promise<Spinner> {
    if (!this.interactive) return NOOP_SPINNER;
    const { default: ora } = await import('ora');
    const s = ora({ text, stream: this.proc.stderr as NodeJS.WritableStream, color: 'cyan', isEnabled: true }).start();
    return {
      update: (t) => {
        s.text = t;
      },
      succeed: (t) => void s.succeed(t),
      fail: (t) => void s.fail(t),
      stop: () => void s.stop(),
    };
  }

  /**
   * A redrawn line on stderr — `label: 1.2 GiB / 4.0 GiB (30%) · 410 MiB/s · ETA 7 s`, the rate over the last ~3 s,
   * redrawn at most every 100 ms — only when interactive (a TTY; never with --json, --quiet or in CI). Elsewhere
   * nothing, or with `plainEverySeconds` the same text as a plain progress line that often (a long step in a CI log).
   */
  progress(label: string, first = 'starting…', opts: { plainEverySeconds?: number } = {}): Progress {
    const every = opts.plainEverySeconds;
    if (!this.interactive && !every) return NOOP_PROGRESS;
    const samples: Array<[number, number]> = [];
    // A TTY draws the first update at once; plain lines start counting now.
    let drawnAt = this.interactive ? 0 : nowSeconds();
    if (this.interactive) this.draw(`${label}: ${first}`);
    return {
      update: (done, total) => {
        const t = nowSeconds();
        samples.push([t, done]);
        while (samples.length > 2 && t - samples[0][0] > 3) samples.shift();
        const [t1, d1] = samples[0];
        const rate = t > t1 ? (done - d1) / (t - t1) : 0;
        const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
        const text = () => `${label}: ${formatBytes(done)} / ${formatBytes(total)} (${pct}%) · ${formatRate(rate)} · ETA ${rate > 0 ? formatDuration((total - done) / rate) : '—'}`;
        if (!this.interactive) {
          // Plain lines: one every `every` seconds while the step runs (none for a quick one, none at its end).
          if (t - drawnAt < every! || done >= total) return;
          drawnAt = t;
          return this.progressLine(text());
        }
        if (t - drawnAt < 0.1 && done < total) return;
        drawnAt = t;
        this.draw(text());
      },
      say: (text) => {
        if (this.interactive) return this.draw(`${label}: ${text}`);
        // Plain lines: at most one every `every` seconds (a quick step prints none).
        const t = nowSeconds();
        if (t - drawnAt < every!) return;
        drawnAt = t;
        this.progressLine(`${label}: ${text}`);
      },
      end: () => this.draw(null),
    };
  }

  private draw(text: string | null): void {
    if (text === null && this.bar === null) return;
    this.bar = text;
    this.proc.stderr.write(`\r\u001b[2K${text ?? ''}`);
  }

  /** Writes a line, clearing the progress line first and drawing it again after. */
  private say(stream: WritableLike, text: string): void {
    const bar = this.bar;
    if (bar !== null) this.proc.stderr.write('\r\u001b[2K');
    stream.write(text);
    if (bar !== null) this.proc.stderr.write(bar);
  }
}

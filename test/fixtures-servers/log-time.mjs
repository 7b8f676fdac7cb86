// The log's own clock, read independently of coldstart's rules (src/server/rules): each engine's
// timestamp format → seconds, and the expected split of a fixture log from its `.expect` anchors.
// Used by the replay server (to play lines at their real, compressed, times) and by the replay test and
// bench/wrap/table.mjs (the truth the measured split is compared with).
import { readFileSync, existsSync } from 'node:fs';

const FORMATS = [
  // TGI plain: 2024-09-03T04:36:57.507198Z  INFO …   (microseconds)
  { re: /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z/, tick: 1e-6, f: (m) => Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 1000 + Number(m[6]) },
  // TGI --json-output: {"timestamp":"2024-02-21T05:09:46.814956Z",…}
  { re: /"timestamp":"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z"/, tick: 1e-6, f: (m) => Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 1000 + Number(m[6]) },
  // SGLang: [2026-08-27 03:45:41] or [2026-08-27 03:45:41 TP0]   (whole seconds)
  { re: /^\[(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:[ \]])/, tick: 1, f: (m) => Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000 },
  // vLLM: [(EngineCore pid=1) ]INFO 03-22 12:15:09 [file.py:1]   (whole seconds, no year)
  { re: /(?:^|\) )(?:INFO|WARNING|ERROR|DEBUG) (\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) \[/, tick: 1, f: (m) => Date.UTC(2000, +m[1] - 1, +m[2], +m[3], +m[4], +m[5]) / 1000 },
  // llama.cpp --log-timestamps: 0.13.800.494 I …   (minutes.seconds.milliseconds.microseconds since start)
  { re: /^(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) [IWEDT] /, tick: 1e-6, f: (m) => +m[1] * 60 + +m[2] + +m[3] / 1e3 + +m[4] / 1e6 },
];

/** Seconds on the log's own clock and its resolution, or null for a line without a timestamp. */
export function logTime(line) {
  for (const { re, tick, f } of FORMATS) {
    const m = re.exec(line);
    if (m) return { s: f(m), tick };
  }
  return null;
}

/** Lines with their log time (lines without one take the previous line's; leading ones the first's). */
export function timedLines(text) {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const out = lines.map((line) => ({ line, ...(logTime(line) ?? { s: null, tick: null }) }));
  const first = out.find((l) => l.s !== null);
  if (!first) throw new Error('no timestamped line');
  let prev = first.s;
  let tick = first.tick;
  for (const l of out) {
    if (l.s === null) {
      l.s = prev;
      l.tick = tick;
    } else {
      prev = l.s;
      tick = l.tick;
    }
  }
  const t0 = first.s;
  return out.map((l) => ({ line: l.line, t: l.s - t0, tick: l.tick }));
}

/**
 * The expected split of a fixture from its `.expect` file: rows "phase | from | to" where from/to are
 * substrings of log lines (from: first line containing it, or the last with a "last:" prefix; to: the last
 * line containing it). A phase may be a group such as "compile+warmup" (compared as a sum). Times come only
 * from the log's timestamps. Unexplained = first line → ready (the last line) minus the phases.
 */
export function expectedSplit(logPath) {
  const timed = timedLines(readFileSync(logPath, 'utf8'));
  const expPath = logPath.replace(/\.log$/, '.expect');
  if (!existsSync(expPath)) return null;
  const meta = {};
  const phases = {};
  for (const raw of readFileSync(expPath, 'utf8').split('\n')) {
    const row = raw.trim();
    if (!row || row.startsWith('#')) continue;
    const kv = /^(\w[\w-]*):\s*(.*)$/.exec(row);
    if (kv && !row.includes('|')) {
      meta[kv[1]] = kv[2];
      continue;
    }
    const [phase, from, to] = row.split('|').map((x) => x.trim());
    const pick = (needle, wantLast) => {
      const hits = timed.filter((l) => l.line.includes(needle));
      if (hits.length === 0) throw new Error(`${expPath}: no line contains "${needle}"`);
      return wantLast ? hits.at(-1) : hits[0];
    };
    const a = from.startsWith('last:') ? pick(from.slice(5), true) : pick(from, false);
    const b = pick(to, true);
    if (b.t < a.t) throw new Error(`${expPath}: "${to}" comes before "${from}"`);
    phases[phase] = (phases[phase] ?? 0) + (b.t - a.t);
  }
  const total = timed.at(-1).t;
  const explained = Object.values(phases).reduce((x, y) => x + y, 0);
  const tick = Math.max(...timed.map((l) => l.tick));
  return { phases, unexplained: total - explained, total, tick, meta, lines: timed.length };
}

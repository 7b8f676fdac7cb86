/**
 * From timestamped server log lines to non-overlapping stages, using the rules in ./rules/.
 *
 * - The engine is the first engine whose signature a line matches; only its rules (and --stage rules) apply.
 * - An end line with a printed duration ("took 12.0 s", "elapsed=12.0 s") starts that long before it: the
 *   engine's own number is preferred over the distance from its begin line.
 * - A begin line with no end line is bounded by the next matched line (or ready) and says so:
 *   "… (no end line, bounded by <that stage>)"; it never runs on over the stages after it.
 * - The same stage printed by several ranks (tensor parallel) is one span: the union of the ranks' spans.
 * - Nested stages (vLLM's "init engine … took" holds compile and graph capture): each time segment goes to
 *   the shortest stage covering it, so every second is counted once and the outer stage keeps its remainder.
 */
import { ENGINES, type EngineName, type LogRule, type WrapPhase } from './rules/index.js';
import { normalizeLine } from './log-lines.js';

export interface LogLine {
  t: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface Stage {
  engine: EngineName | 'custom';
  stage: string;
  phase: WrapPhase;
  start: number;
  end: number;
  /** Duration the engine printed, when it printed one (seconds; the largest over ranks). */
  reportedSeconds?: number;
  /** Seconds counted for this stage: its span minus the nested stages inside it. */
  ownSeconds?: number;
  /** Ids of the rules that produced it (data in src/server/rules). */
  rules?: string[];
  /** How a missing end was bounded. */
  note?: string;
}

export interface StagesResult {
  engine: EngineName | null;
  version: string | null;
  stages: Stage[];
}

interface Interval {
  start: number;
  end: number;
  reported?: number;
  rules: Set<string>;
  note?: string;
}

/** Detects the engine and its printed version from the lines (first signature match wins). */
export function detectEngine(lines: readonly LogLine[]): { engine: EngineName | null; version: string | null } {
  let engine: EngineName | null = null;
  for (const l of lines) {
    const text = normalizeLine(l.text);
    const e = ENGINES.find((s) => s.signature.test(text));
    if (e) {
      engine = e.engine;
      break;
    }
  }
  if (!engine) return { engine: null, version: null };
  const spec = ENGINES.find((s) => s.engine === engine)!;
  let version: string | null = null;
  if (spec.version) {
    for (const l of lines) {
      const m = spec.version.exec(normalizeLine(l.text));
      if (m) {
        version = m.slice(1).find((x) => x !== undefined) ?? null;
        break;
      }
    }
  }
  return { engine, version };
}

function stageName(rule: LogRule, m: RegExpExecArray): string {
  if (rule.variantGroup === undefined) return rule.stage;
  const v = (m[rule.variantGroup] ?? '').trim();
  return rule.stage.replace('{1}', v ? ` (${v})` : '');
}

/**
 * Turns timestamped log lines into stages up to `readyAt`. `extraRules` are --stage rules; `reportedScale`
 * multiplies the durations the engine printed (1 in real use; the replay harness plays logs faster than real
 * time and passes the same factor).
 */
export function stagesFromLog(lines: readonly LogLine[], readyAt: number, extraRules: readonly LogRule[] = [], reportedScale = 1): StagesResult {
  const upto = lines.filter((l) => l.t <= readyAt);
  const { engine, version } = detectEngine(upto);
  const rules: LogRule[] = [...(engine ? ENGINES.find((e) => e.engine === engine)!.rules : []), ...extraRules];
  if (rules.length === 0) return { engine, version, stages: [] };

  type Ev = { t: number; key: string; rule: LogRule; m: RegExpExecArray };
  const events: Ev[] = [];
  for (const l of upto) {
    const text = normalizeLine(l.text);
    for (const rule of rules) {
      const m = rule.re.exec(text);
      if (m) events.push({ t: l.t, key: `${rule.phase}\u0000${stageName(rule, m)}`, rule, m });
    }
  }

  const intervals = new Map<string, Interval[]>();
  const add = (key: string, iv: Interval) => {
    const list = intervals.get(key) ?? [];
    list.push(iv);
    intervals.set(key, list);
  };
  const open = new Map<string, { t: number; rule: LogRule; idx: number }>();
  let prevT: number | null = null; // time of the previous matched line (a line before the current one)
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const { rule, m, key } = ev;
    if (rule.kind === 'begin') {
      if (!open.has(key)) open.set(key, { t: ev.t, rule, idx: i });
    } else if (rule.kind === 'end') {
      const raw = rule.secondsGroup !== undefined ? m[rule.secondsGroup] : undefined;
      const reported = raw !== undefined && raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : undefined;
      const o = open.get(key);
      open.delete(key);
      if (reported !== undefined) add(key, { start: ev.t - reported * reportedScale, end: ev.t, reported, rules: new Set([rule.id]) });
      else if (o) add(key, { start: o.t, end: ev.t, rules: new Set([o.rule.id, rule.id]) });
      else if (rule.fromPrevious && prevT !== null) add(key, { start: prevT, end: ev.t, rules: new Set([rule.id]), note: 'starts at the previous matched line' });
      // a --stage rule's first line: the stage runs from the server's start
      else if (rule.fromPrevious && rule.engine === 'custom') add(key, { start: 0, end: ev.t, rules: new Set([rule.id]), note: 'starts at process start' });
    }
    // Lines matched by several rules (e.g. "Uvicorn running" ends one stage and begins another) share a time.
    const next = events[i + 1];
    if (!next || next.t !== ev.t || next.m.input !== ev.m.input) prevT = ev.t;
  }
  // Begins with no end: bounded by the next matched line of another stage, else by ready.
  for (const [key, o] of open) {
    const next = events.slice(o.idx + 1).find((e) => e.t > o.t && e.key !== key);
    const end = next ? next.t : readyAt;
    const by = next ? `"${stageName(next.rule, next.m)}"` : 'ready';
    add(key, { start: o.t, end, rules: new Set([o.rule.id]), note: `no end line, bounded by ${by}` });
  }

  // Union per stage (tensor-parallel ranks print the same stage), then ownership of each time segment.
  const spans: Stage[] = [];
  for (const [key, list] of intervals) {
    const [phase, name] = key.split('\u0000') as [WrapPhase, string];
    const eng = list.length && [...list[0]!.rules][0]!.startsWith('custom.') ? 'custom' : engine!;
    const sorted = list.map((x) => ({ ...x, start: Math.max(0, x.start), end: Math.min(x.end, readyAt) })).filter((x) => x.end >= x.start).sort((a, b) => a.start - b.start);
    let cur: Interval | null = null;
    const flush = () => {
      if (!cur) return;
      const c: Interval = cur;
      spans.push({ engine: eng, stage: c.note?.startsWith('no end line') ? `${name} (${c.note})` : name, phase, start: c.start, end: c.end, ...(c.reported !== undefined ? { reportedSeconds: c.reported } : {}), rules: [...c.rules], ...(c.note ? { note: c.note } : {}) });
    };
    for (const iv of sorted) {
      if (cur && iv.start <= cur.end) {
        cur.end = Math.max(cur.end, iv.end);
        iv.rules.forEach((r) => cur!.rules.add(r));
        if (iv.reported !== undefined) cur.reported = Math.max(cur.reported ?? 0, iv.reported);
        if (!iv.note) delete cur.note;
      } else {
        flush();
        cur = { ...iv, rules: new Set(iv.rules) };
      }
    }
    flush();
  }
  const bounds = [...new Set(spans.flatMap((x) => [x.start, x.end]))].sort((a, b) => a - b);
  const own = new Map<Stage, number>();
  for (let i = 0; i + 1 < bounds.length; i++) {
    const a = bounds[i]!;
    const b = bounds[i + 1]!;
    let best: Stage | null = null;
    for (const x of spans) if (x.start <= a && x.end >= b && (!best || x.end - x.start < best.end - best.start)) best = x;
    if (best) own.set(best, (own.get(best) ?? 0) + (b - a));
  }
  const stages = spans
    // A stage whose begin and end lines reached us in the same read (a loaded machine batches pipe data) took
    // less than we can resolve: it is kept at 0 s rather than dropped. Stages covered by shorter ones own nothing.
    .filter((x) => (own.get(x) ?? 0) > 0 || x.end === x.start)
    .map((x) => ({ ...x, ownSeconds: own.get(x) ?? 0 }))
    .sort((a, b) => a.start - b.start);
  return { engine, version, stages };
}

/** Seconds per phase from stages (own seconds, so nested stages are not counted twice). */
export function phaseSeconds(stages: readonly Stage[]): Record<WrapPhase, number> {
  const out: Record<WrapPhase, number> = { download: 0, 'gpu-load': 0, compile: 0, warmup: 0 };
  for (const s of stages) out[s.phase] += s.ownSeconds ?? s.end - s.start;
  return out;
}

/**
 * Two answers side by side — optimize's baseline and optimized start, or a snapshot's first answer and the restored
 * server's: identical, or — for JSON answers (an OpenAI completion with logprobs, a tensor as numbers) — the largest
 * numeric difference judged against the dtype's tolerance (formats/dtypes.ts: torch.testing's defaults), and the first
 * other difference by its path. Text that differs is reported as differing, never "close". Fields that change from
 * request to request (ids, timestamps, timings, cache counts) are not compared (answer.ts: the same reading snapshot
 * and restore compare their answers' digests by).
 */
import { dtypeTolerance, type Dtype } from '../formats/dtypes.js';
import { VOLATILE, parseAnswer } from './answer.js';

export type AnswerVerdict = 'identical' | 'within-tolerance' | 'differs' | 'not-compared';

export interface AnswerComparison {
  verdict: AnswerVerdict;
  /** json: compared field by field (numbers numerically); text: byte for byte. */
  kind: 'json' | 'text' | null;
  /** The largest numeric difference (JSON answers with numbers), where and how it stands against the tolerance. */
  largestDifference: { path: string; baseline: number; optimized: number; abs: number; allowed: number } | null;
  tolerance: { dtype: Dtype; rtol: number; atol: number; source: string } | null;
  /** The first non-numeric difference (a token, a key), or why nothing was compared. */
  detail: string | null;
}

interface Walk {
  largest: AnswerComparison['largestDifference'];
  worstRatio: number;
  firstOther: string | null;
  names: AnswerNames;
}

/** How the two answers are named in a difference ("only in the baseline's answer"). */
export interface AnswerNames {
  a: string;
  b: string;
}

const OPTIMIZE_NAMES: AnswerNames = { a: "the baseline's", b: "the optimized start's" };

function walk(a: unknown, b: unknown, path: string, tol: { rtol: number; atol: number }, w: Walk): void {
  if (typeof a === 'number' && typeof b === 'number') {
    const abs = Math.abs(a - b);
    const allowed = tol.atol + tol.rtol * Math.abs(a);
    const ratio = Number.isFinite(abs) ? abs / allowed : Infinity;
    if (abs > 0 && (w.largest === null || ratio > w.worstRatio)) {
      w.largest = { path: path || '(root)', baseline: a, optimized: b, abs, allowed };
      w.worstRatio = ratio;
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) w.firstOther ??= `${path || '(root)'}: ${a.length} item(s) vs ${b.length}`;
    for (let i = 0; i < Math.min(a.length, b.length); i++) walk(a[i], b[i], `${path}[${i}]`, tol, w);
    return;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a).filter((k) => !VOLATILE.test(k));
    const kb = new Set(Object.keys(b).filter((k) => !VOLATILE.test(k)));
    for (const k of ka) {
      if (!kb.has(k)) w.firstOther ??= `${path}.${k}: only in ${w.names.a} answer`;
      else walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`, tol, w);
      kb.delete(k);
    }
    for (const k of kb) w.firstOther ??= `${path}.${k}: only in ${w.names.b} answer`;
    return;
  }
  if (a !== b) w.firstOther ??= `${path || '(root)'}: ${JSON.stringify(a)?.slice(0, 60)} vs ${JSON.stringify(b)?.slice(0, 60)}`;
}

/** Compares answer `baseline` with `optimized` (named by `names` in what it says), numbers judged in `dtype`. */
export function compareAnswers(baseline: string | null, optimized: string | null, dtype: Dtype, dtypeSource: string, names: AnswerNames = OPTIMIZE_NAMES): AnswerComparison {
  const none = (detail: string): AnswerComparison => ({ verdict: 'not-compared', kind: null, largestDifference: null, tolerance: null, detail });
  if (baseline === null || optimized === null) return none(`not compared: ${baseline === null ? 'the baseline' : 'the optimized start'} sent no first request`);
  const ja = parseAnswer(baseline);
  const jb = parseAnswer(optimized);
  if (ja === null || jb === null) {
    const same = baseline === optimized;
    return { verdict: same ? 'identical' : 'differs', kind: 'text', largestDifference: null, tolerance: null, detail: same ? null : 'the answers are text and not identical (text is compared byte for byte)' };
  }
  const t = dtypeTolerance(dtype);
  const tolerance = { dtype, ...t, source: `torch.testing.assert_close defaults for ${dtype} (${dtypeSource})` };
  const w: Walk = { largest: null, worstRatio: 0, firstOther: null, names };
  walk(ja, jb, '', t, w);
  if (w.firstOther) return { verdict: 'differs', kind: 'json', largestDifference: w.largest, tolerance, detail: w.firstOther };
  if (w.largest === null) return { verdict: 'identical', kind: 'json', largestDifference: null, tolerance, detail: null };
  return { verdict: w.worstRatio <= 1 ? 'within-tolerance' : 'differs', kind: 'json', largestDifference: w.largest, tolerance, detail: null };
}

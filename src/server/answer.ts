/**
 * A server's answer as coldstart compares it: what changes between any two requests by design (ids, timestamps,
 * timings: `VOLATILE` keys, at any depth) is left out; a JSON answer — one document, or the `data:` events of a
 * stream — is read as JSON, anything else as bytes. compare.ts judges two answers field by field with it;
 * snapshot and restore record and compare `answerSha256` (an answer is identical when its digest is), so an
 * OpenAI-compatible completion (`id`, `created` new each time) restores as "identical" when its text and numbers are.
 */
import { createHash } from 'node:crypto';

/**
 * Keys whose values differ between any two requests by design: ids and clocks; the speeds and timings servers report
 * (llama.cpp's `timings` object — prompt_n/cache_n/…_per_second, its stream's `prompt_progress`); and how much of the
 * prompt a cache already held (OpenAI's `usage.prompt_tokens_details.cached_tokens`, SGLang's `meta_info.cached_tokens`,
 * llama.cpp's `tokens_cached`), which differs between a server's first request and any later one.
 */
export const VOLATILE = /^(id|created|created_at|system_fingerprint|timestamp|time|request_id|timings|prompt_progress|cached_tokens|tokens_cached|cache_n|.*_time|.*latency.*|.*_ms|.*_per_second)$/i;

/** A body as JSON: one document, or the `data:` events of a stream (an array); null when it is neither. */
export function parseAnswer(text: string): unknown {
  const t = text.trim();
  if (t === '') return null;
  try {
    return JSON.parse(t) as unknown;
  } catch {
    /* a stream, or text */
  }
  const events = t
    .split('\n')
    .filter((l) => l.startsWith('data:'))
    .map((l) => l.slice(5).trim())
    .filter((p) => p !== '' && p !== '[DONE]');
  if (events.length === 0) return null;
  try {
    return events.map((e) => JSON.parse(e) as unknown);
  } catch {
    return null;
  }
}

/** `v` with every VOLATILE key dropped at every depth and object keys sorted: one text for equal answers. */
function stable(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stable);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .filter((k) => !VOLATILE.test(k))
        .sort()
        .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * The sha256 of an answer as compared: a JSON answer's stable form (VOLATILE keys left out, keys sorted, numbers as
 * JavaScript reads them), prefixed `json:` before hashing so it never equals a text's; any other body's bytes.
 */
export function answerSha256(body: Buffer): string {
  const json = parseAnswer(body.toString('utf8'));
  const h = createHash('sha256');
  if (json === null) h.update(body);
  else h.update(`json:${JSON.stringify(stable(json))}`);
  return h.digest('hex');
}

/** What is recorded of an answer: the sha256 of its bytes, and of the answer as compared (answerSha256). */
export interface AnswerDigests {
  bodySha256: string;
  answerSha256: string;
}

export function answerDigests(body: Buffer): AnswerDigests {
  return { bodySha256: createHash('sha256').update(body).digest('hex'), answerSha256: answerSha256(body) };
}

/**
 * Whether an answer is the one recorded: as answers compare (ids and timestamps left out) where the record has
 * `answerSha256`; a record from before it (an image snapshot took earlier) has only the bytes' digest, compared by it.
 */
export function sameAnswer(recorded: { bodySha256: string; answerSha256?: string }, now: AnswerDigests): boolean {
  return recorded.answerSha256 !== undefined ? now.answerSha256 === recorded.answerSha256 : now.bodySha256 === recorded.bodySha256;
}

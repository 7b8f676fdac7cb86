/**
 * The one reading of a server's answer (src/server/answer.ts) that optimize compares field by field and snapshot /
 * restore compare by digest. The shapes are the OpenAI-compatible ones real servers send: a completion as in the
 * OpenAI API reference (quoted in tensorchord/modelz-llm#83: id "cmpl-…", object, created, model, choices, usage) and a
 * vLLM-family stream of `data:` chunks (vllm-project/vllm-omni#2313: id "chatcmpl-…", created, usage, metrics per
 * chunk); the values here are ours.
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { answerDigests, answerSha256, parseAnswer, sameAnswer } from '../../src/server/answer.js';

const completion = (id: string, created: number, text: string, extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ id, object: 'text_completion', created, model: 'llama3-8b', choices: [{ text, index: 0, logprobs: null, finish_reason: 'length' }], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 }, ...extra }));

const stream = (id: string, created: number, pieces: string[]) =>
  Buffer.from(
    `${pieces
      .map((p, i) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'llama3-8b', choices: [{ index: 0, delta: { content: p }, logprobs: null, finish_reason: null }], usage: { prompt_tokens: 33, total_tokens: 34 + i, completion_tokens: 1 + i }, metrics: {} })}\n\n`)
      .join('')}data: [DONE]\n\n`,
  );

describe('answerSha256: an answer as compared', () => {
  it('the same completion sent twice (a new id and created each time) is the same answer; another text is not', () => {
    const a = completion('cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7', 1589478378, '\n\nThis is a test');
    const b = completion('cmpl-9f3b1c2d4e5f60718293a4b5', 1765012345, '\n\nThis is a test');
    expect(createHash('sha256').update(a).digest('hex')).not.toBe(createHash('sha256').update(b).digest('hex'));
    expect(answerSha256(a)).toBe(answerSha256(b));
    expect(answerSha256(completion('cmpl-x', 1, '\n\nThis is not a test'))).not.toBe(answerSha256(a));
    // Counts and numbers are compared (usage is not volatile); key order is not.
    expect(answerSha256(completion('cmpl-x', 1, '\n\nThis is a test', { usage: { prompt_tokens: 5, completion_tokens: 8, total_tokens: 13 } }))).not.toBe(answerSha256(a));
    const reordered = Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(a.toString())).reverse())));
    expect(answerSha256(reordered)).toBe(answerSha256(a));
  });

  it('a stream of data: chunks: the same pieces with other ids are the same answer, other pieces are not', () => {
    const a = stream('chatcmpl-b7ddcbda6e479b7b', 1774934432, ['v', 'LL', 'M']);
    expect(Array.isArray(parseAnswer(a.toString()))).toBe(true);
    expect(answerSha256(stream('chatcmpl-0123456789abcdef', 1774999999, ['v', 'LL', 'M']))).toBe(answerSha256(a));
    expect(answerSha256(stream('chatcmpl-b7ddcbda6e479b7b', 1774934432, ['v', 'LL', 'm']))).not.toBe(answerSha256(a));
  });

  it('text is compared byte for byte, and never equals the JSON that reads alike', () => {
    const text = Buffer.from('tokens: 56132 67645 1878');
    expect(parseAnswer(text.toString())).toBeNull();
    expect(answerSha256(text)).toBe(createHash('sha256').update(text).digest('hex'));
    expect(answerSha256(Buffer.from('tokens: 56132 67645 1879'))).not.toBe(answerSha256(text));
    expect(answerSha256(Buffer.from('{"a":1}'))).not.toBe(createHash('sha256').update('{"a":1}').digest('hex'));
    expect(answerSha256(Buffer.alloc(0))).toBe(createHash('sha256').update(Buffer.alloc(0)).digest('hex'));
  });

  it('an answer against a record: by answerSha256 where recorded, by the bytes for a record from before it', () => {
    const a = completion('cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7', 1589478378, '\n\nThis is a test');
    const again = completion('cmpl-0000', 1589478999, '\n\nThis is a test');
    const recorded = answerDigests(a);
    expect(recorded).toEqual({ bodySha256: createHash('sha256').update(a).digest('hex'), answerSha256: answerSha256(a) });
    expect(sameAnswer(recorded, answerDigests(again))).toBe(true);
    expect(sameAnswer(recorded, answerDigests(completion('cmpl-0000', 1589478999, '\n\nThis is not a test')))).toBe(false);
    const before = { bodySha256: recorded.bodySha256 }; // an image taken before answerSha256: only the bytes
    expect(sameAnswer(before, answerDigests(a))).toBe(true);
    expect(sameAnswer(before, answerDigests(again))).toBe(false);
  });
});

/**
 * A server's first request and a later one differ in what its caches held and how fast it went, not in the answer:
 * the shapes and values below are the servers' own, as their authors posted them — llama.cpp's `timings` (its OpenAI
 * chat completion, ggml-org/llama.cpp#15827: cache_n 236, prompt_n 1 once the prompt was cached, and the speeds), its
 * native /completion (#10853: index, content, tokens, id_slot, tokens_predicted, tokens_evaluated, plus
 * tokens_cached), llama-server's `usage.prompt_tokens_details.cached_tokens` (37 prompt tokens, 33 cached, as a
 * client's test of its real traffic quotes it), SGLang's /generate `meta_info` (id, finish_reason, prompt_tokens,
 * completion_tokens, cached_tokens, e2e_latency). Restore compares its first answer with the snapshot's warmup — the
 * server's very first — so these must not make the same answer "different".
 */
describe('the same answer from a cold and from a warm cache', () => {
  const chat = (id: string, created: number, content: string, timings: Record<string, number>, cached: number) =>
    Buffer.from(
      JSON.stringify({
        choices: [{ finish_reason: 'stop', index: 0, message: { role: 'assistant', content } }],
        created,
        model: 'gpt-3.5-turbo',
        system_fingerprint: 'b6397-4d5ca7ef',
        object: 'chat.completion',
        usage: { completion_tokens: 35, prompt_tokens: 237, total_tokens: 272, prompt_tokens_details: { cached_tokens: cached } },
        id,
        timings,
      }),
    );
  const cold = { cache_n: 0, prompt_n: 237, prompt_ms: 214.5, prompt_per_token_ms: 0.905, prompt_per_second: 1104.9, predicted_n: 35, predicted_ms: 672.1, predicted_per_token_ms: 19.2, predicted_per_second: 52.07 };
  const warm = { cache_n: 236, prompt_n: 1, prompt_ms: 30.958, prompt_per_token_ms: 30.958, prompt_per_second: 32.301828283480845, predicted_n: 35, predicted_ms: 661.064, predicted_per_token_ms: 18.887542857142858, predicted_per_second: 52.94494935437416 };

  it("llama.cpp's chat completion: the timings and cached tokens of a warm cache leave the answer the same; its text does not", () => {
    const first = chat('chatcmpl-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1757141600, 'Paris.', cold, 0);
    const later = chat('chatcmpl-ecQULm0WqPrftUqjPZO1CFYeDjGZNbDu', 1757141666, 'Paris.', warm, 236);
    expect(sameAnswer(answerDigests(first), answerDigests(later))).toBe(true);
    expect(sameAnswer(answerDigests(first), answerDigests(chat('chatcmpl-b', 1757141667, 'Lyon.', warm, 236)))).toBe(false);
    // Counts that are the answer's own still count: one more completion token is another answer.
    const longer = JSON.parse(later.toString());
    longer.usage.completion_tokens = 36;
    expect(answerSha256(Buffer.from(JSON.stringify(longer)))).not.toBe(answerSha256(later));
  });

  it("llama.cpp's native /completion: tokens_cached differs, the tokens do not", () => {
    const body = (tokensCached: number, tokens: number[]) =>
      Buffer.from(JSON.stringify({ index: 0, content: ' Aki, and I am the owner', tokens, id_slot: 0, stop: true, model: 'gpt-3.5-turbo', tokens_predicted: 8, tokens_evaluated: 5, tokens_cached: tokensCached, timings: tokensCached ? warm : cold }));
    const t = [362, 6642, 11, 323, 358, 1079, 279, 6372];
    expect(answerSha256(body(0, t))).toBe(answerSha256(body(12, t)));
    expect(answerSha256(body(0, t))).not.toBe(answerSha256(body(0, [...t.slice(0, 7), 6373])));
  });

  it("SGLang's /generate: meta_info's cached_tokens and e2e_latency differ, the text and output ids do not", () => {
    const body = (id: string, cached: number, latency: number, text: string) =>
      Buffer.from(JSON.stringify({ text, output_ids: [287, 257], meta_info: { id, finish_reason: { type: 'length', length: 2 }, prompt_tokens: 6, completion_tokens: 2, cached_tokens: cached, e2e_latency: latency } }));
    expect(answerSha256(body('a1b2', 0, 0.41, ' in a'))).toBe(answerSha256(body('c3d4', 5, 0.06, ' in a')));
    expect(answerSha256(body('a1b2', 0, 0.41, ' in a'))).not.toBe(answerSha256(body('a1b2', 0, 0.41, ' in the')));
  });
});

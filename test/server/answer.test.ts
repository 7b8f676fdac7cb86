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

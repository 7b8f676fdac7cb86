/**
 * Where a restored server's first answer differs from the snapshot's (src/snapshot/restore.ts whereAnswerDiffers),
 * read from the image's copy of that answer (first-answer) only when the manifest lists it among its verified files.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { whereAnswerDiffers } from '../../src/snapshot/restore.js';
import type { Manifest } from '../../src/snapshot/manifest.js';

const image = mkdtempSync(join(tmpdir(), 'cs-first-answer-'));
afterAll(() => rmSync(image, { recursive: true, force: true }));
const listed = { files: [{ name: 'first-answer' }] } as unknown as Manifest;
const completion = (text: string, tokens: number) => JSON.stringify({ id: `cmpl-${text.length}`, created: 1, choices: [{ index: 0, text, finish_reason: 'length' }], usage: { completion_tokens: tokens } });

describe('whereAnswerDiffers', () => {
  it('names the first field that differs, by its path, as the two answers had it', () => {
    writeFileSync(join(image, 'first-answer'), completion('Paris.', 2));
    expect(whereAnswerDiffers(image, listed, completion('Lyon.', 2))).toBe(': at choices[0].text: "Paris." vs "Lyon."');
    expect(whereAnswerDiffers(image, listed, completion('Paris.', 3))).toBe(': at usage.completion_tokens, 2 then, 3 now');
  });

  it('text answers: said to differ, no path', () => {
    writeFileSync(join(image, 'first-answer'), 'tokens: 1 2 3');
    expect(whereAnswerDiffers(image, listed, 'tokens: 1 2 4')).toBe(': text answers, not the same bytes');
  });

  it('a hostile copy costs nothing: one listed larger than an answer can be is not read; one nested past the stack is no place', () => {
    writeFileSync(join(image, 'first-answer'), '['.repeat(200000) + ']'.repeat(200000));
    expect(whereAnswerDiffers(image, { files: [{ name: 'first-answer', bytes: 32 << 20 }] } as unknown as Manifest, '[]')).toBe('');
    expect(whereAnswerDiffers(image, listed, '[1]')).toBe('');
  });

  it('nothing to say: no answer now, no copy listed (an older image), or a copy missing from the folder', () => {
    writeFileSync(join(image, 'first-answer'), completion('Paris.', 2));
    expect(whereAnswerDiffers(image, listed, null)).toBe('');
    expect(whereAnswerDiffers(image, { files: [] } as unknown as Manifest, completion('Lyon.', 2))).toBe('');
    rmSync(join(image, 'first-answer'));
    expect(whereAnswerDiffers(image, listed, completion('Lyon.', 2))).toBe('');
  });
});

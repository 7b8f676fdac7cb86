/**
 * docs/schema/optimize.schema.json against reports nobody shaped for the test: the committed GPU runs (H100,
 * 2026-12-05, an 8B-shaped torch.compile server, with and without --snapshot) validate with Ajv, and a report that
 * writes a missing measurement as 0-like garbage or drops a required field does not.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { validateOptimizeReport } from '../profile/helpers.js';

const run = (dir: string) => fileURLToPath(new URL(`../../bench/optimize/${dir}/optimize.json`, import.meta.url));

describe('docs/schema/optimize.schema.json', () => {
  for (const dir of ['h100-8b-2026-12-05', 'h100-8b-snapshot-2026-12-05']) {
    it(`validates the committed device run ${dir}`, () => {
      expect(existsSync(run(dir))).toBe(true);
      expect(validateOptimizeReport(JSON.parse(readFileSync(run(dir), 'utf8')))).toEqual([]);
    });
  }

  it('refuses a report without its answers, with a negative saving in a phase, or an unknown remedy', () => {
    const good = JSON.parse(readFileSync(run('h100-8b-snapshot-2026-12-05'), 'utf8')) as { details: Record<string, unknown> & { credits: Array<Record<string, unknown>>; restored: { phases: Array<Record<string, unknown>> } } };
    const noAnswers = structuredClone(good);
    delete noAnswers.details.answers;
    expect(validateOptimizeReport(noAnswers).join('\n')).toMatch(/answers/);
    const negative = structuredClone(good);
    negative.details.restored.phases[0]!.seconds = -1;
    expect(validateOptimizeReport(negative)).not.toEqual([]);
    const remedy = structuredClone(good);
    remedy.details.credits[0]!.remedy = 'magic';
    expect(validateOptimizeReport(remedy)).not.toEqual([]);
  });
});

import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that take longest on the 2-core machine (bench/suite/README.md), longest first. A clean clone has no
 * vitest results cache, so vitest's own order is the file list's and a two-minute Python file could start last and
 * run alone at the end; these start first, the short files fill the workers around them. Files not named here keep
 * vitest's order (by its cached durations once it has them). A name that no longer exists is simply unused.
 */
const LONGEST_FIRST = [
  'test/warmup/compile/torch.test.ts',
  'test/warmup/python.test.ts',
  'test/python/load-hf.test.ts',
  'test/profile/torch-interop.test.ts',
  'test/convert/interop.test.ts',
  'test/telemetry/telemetry.test.ts',
  'test/profile/profile.test.ts',
  'test/profile/truth.test.ts',
  'test/cache/race.test.ts',
  'test/core/budget-parity.test.ts',
  'test/snapshot/snapshot.test.ts',
  'test/core/merge.test.ts',
];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rest = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((p) => f.moduleId.endsWith(`/${p}`));
      return i < 0 ? LONGEST_FIRST.length : i;
    };
    return rest.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map((x) => x.f);
  }
}

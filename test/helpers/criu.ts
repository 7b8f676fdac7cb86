/**
 * Whether real CRIU can run here (root and a working binary). CI sets COLDSTART_CRIU and COLDSTART_REQUIRE_CRIU=1,
 * so a missing CRIU fails the suite there instead of skipping: eval "$(scripts/ci-criu.sh)".
 */
import { spawnSync } from 'node:child_process';

export const criuPath = process.env.COLDSTART_CRIU ?? 'criu';

export function criuReady(): boolean {
  const ok = process.getuid?.() === 0 && spawnSync(criuPath, ['--version']).status === 0;
  if (!ok && process.env.COLDSTART_REQUIRE_CRIU === '1') throw new Error(`COLDSTART_REQUIRE_CRIU=1 but ${criuPath} does not run or we are not root: eval "$(scripts/ci-criu.sh)"`);
  return ok;
}

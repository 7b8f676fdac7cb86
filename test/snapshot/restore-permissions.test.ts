// What CRIU's restore will certainly be refused with, said before anything is restored (doctor.ts
// restorePermissionFixes, restore.ts imageHasSeccompFilters): Yama's rules for a tracer seizing its own descendants,
// and a seccomp-filtered coldstart restoring an image whose processes had filters — read from seccomp.img files real
// CRIU 4.2.1 wrote (test/fixtures-criu/images/README.source).
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { restorePermissionFixes } from '../../src/snapshot/doctor.js';
import { imageHasSeccompFilters } from '../../src/snapshot/restore.js';
import type { Manifest } from '../../src/snapshot/manifest.js';

const fixture = (f: string) => fileURLToPath(new URL(`../fixtures-criu/images/${f}`, import.meta.url));
const free = { sysPtrace: true, sysAdmin: true, seccomp: 0, ptraceScope: 1 };

describe('restore: what CRIU would certainly be refused with', () => {
  it("seccomp.img as CRIU 4.2.1 writes it: an empty entry for a process without filters, a filter's entry for one with; none listed: none", () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-seccomp-'));
    try {
      const m = (names: string[]) => ({ files: names.map((name) => ({ name })) }) as unknown as Manifest;
      copyFileSync(fixture('seccomp-none.img'), join(dir, 'seccomp.img'));
      expect(imageHasSeccompFilters(dir, m(['seccomp.img']))).toBe(false);
      copyFileSync(fixture('seccomp-one-filter.img'), join(dir, 'seccomp.img'));
      expect(imageHasSeccompFilters(dir, m(['seccomp.img']))).toBe(true);
      // An image that does not list it (older CRIU writes it only with filters): none.
      expect(imageHasSeccompFilters(dir, m(['pstree.img']))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Yama 3 refuses everyone; Yama 2 a tracer without CAP_SYS_PTRACE; Yama 1 lets CRIU seize its own children; a filtered coldstart only an image with filters', () => {
    expect(restorePermissionFixes(free, false)).toEqual([]);
    expect(restorePermissionFixes({ ...free, ptraceScope: 3 }, false)).toEqual([expect.stringMatching(/^kernel\.yama\.ptrace_scope is 3: /)]);
    expect(restorePermissionFixes({ ...free, ptraceScope: 2, sysPtrace: false }, false)).toEqual([expect.stringMatching(/^kernel\.yama\.ptrace_scope is 2 .* --cap-add SYS_PTRACE/)]);
    expect(restorePermissionFixes({ ...free, ptraceScope: 2 }, false)).toEqual([]);
    expect(restorePermissionFixes({ ...free, ptraceScope: 1, sysPtrace: false }, false)).toEqual([]); // its descendants
    expect(restorePermissionFixes({ ...free, seccomp: 2 }, false)).toEqual([]); // the restored tasks just inherit it
    expect(restorePermissionFixes({ ...free, seccomp: 2 }, true)).toEqual([expect.stringMatching(/suspending seccomp failed: Operation not permitted.*seccomp=unconfined/)]);
    expect(restorePermissionFixes({ ...free, seccomp: null, ptraceScope: null, sysPtrace: null }, true)).toEqual([]); // unread: no guess
  });
});

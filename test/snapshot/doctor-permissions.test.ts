/**
 * What doctor says CRIU will be refused with, before anything runs (src/snapshot/doctor.ts permissionFixes), for the
 * causes users met in real CRIU logs (test/fixtures-criu/public/: zeropod-29-seccomp-eperm.log, criu-2080…): ptrace
 * without CAP_SYS_PTRACE, a seccomp filter to suspend without CAP_SYS_ADMIN, Yama's scope 3. Read from /proc (the
 * readers in test/platform/procfs.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { permissionFixes } from '../../src/snapshot/doctor.js';

const all = { sysPtrace: true, sysAdmin: true, seccomp: 0, ptraceScope: 1 };

describe('permissionFixes', () => {
  it('nothing to fix for root with its capabilities, under no filter or with CAP_SYS_ADMIN for it', () => {
    expect(permissionFixes(true, all)).toEqual([]);
    expect(permissionFixes(true, { ...all, seccomp: 2 })).toEqual([]);
  });

  it("a container's defaults: no CAP_SYS_PTRACE, a seccomp filter without CAP_SYS_ADMIN — each its own fix", () => {
    const f = permissionFixes(true, { sysPtrace: false, sysAdmin: false, seccomp: 2, ptraceScope: 1 });
    expect(f).toHaveLength(2);
    expect(f[0]).toMatch(/CAP_SYS_PTRACE.*--cap-add SYS_PTRACE/);
    expect(f[1]).toMatch(/seccomp filter.*CAP_SYS_ADMIN.*suspending seccomp failed: Operation not permitted.*seccomp=unconfined/);
  });

  it('Yama scope 3 stops everyone; not being root is said elsewhere; what could not be read is no fix', () => {
    expect(permissionFixes(true, { ...all, ptraceScope: 3 })[0]).toMatch(/ptrace_scope is 3.*reboots/);
    expect(permissionFixes(false, { ...all, sysPtrace: false })).toEqual([]);
    expect(permissionFixes(true, { sysPtrace: null, sysAdmin: null, seccomp: null, ptraceScope: null })).toEqual([]);
    expect(permissionFixes(true, { ...all, sysAdmin: false, seccomp: 0 })).toEqual([]);
  });
});

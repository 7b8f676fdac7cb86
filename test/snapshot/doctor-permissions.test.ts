/**
 * What CRIU will certainly be refused with, said before anything runs (src/snapshot/doctor.ts permissionFixes: doctor
 * lists it, snapshot refuses with it), for the causes users met in real CRIU logs (test/fixtures-criu/public/:
 * zeropod-29-seccomp-eperm.log, criu-112…): the kernel's rules in kernel/ptrace.c — Yama's scope, CAP_SYS_PTRACE to
 * attach to a non-descendant, and a seccomp filter suspended only by a tracer outside any filter.
 */
import { describe, expect, it } from 'vitest';
import { permissionFixes } from '../../src/snapshot/doctor.js';

const all = { sysPtrace: true, sysAdmin: true, seccomp: 0, ptraceScope: 1 };

describe('permissionFixes', () => {
  it('nothing to fix for root with its capabilities and no seccomp filter', () => {
    expect(permissionFixes(true, all)).toEqual([]);
    expect(permissionFixes(true, { ...all, ptraceScope: null })).toEqual([]);
  });

  it("a container's defaults: a seccomp filter (whatever the capabilities) and no CAP_SYS_PTRACE under Yama 1", () => {
    const f = permissionFixes(true, { sysPtrace: false, sysAdmin: false, seccomp: 2, ptraceScope: 1 });
    expect(f).toHaveLength(2);
    expect(f[0]).toMatch(/ptrace_scope is 1 .*CAP_SYS_PTRACE.*--cap-add SYS_PTRACE/);
    expect(f[1]).toMatch(/seccomp filter.*suspending seccomp failed: Operation not permitted.*seccomp=unconfined/);
    // CAP_SYS_ADMIN does not help a tracer that is itself under a filter (check_ptrace_options).
    expect(permissionFixes(true, { ...all, seccomp: 2 })).toHaveLength(1);
  });

  it('no CAP_SYS_PTRACE is no obstacle without Yama or at scope 0 (same uid, the server started by coldstart)', () => {
    expect(permissionFixes(true, { ...all, sysPtrace: false, ptraceScope: 0 })).toEqual([]);
    expect(permissionFixes(true, { ...all, sysPtrace: false, ptraceScope: null })).toEqual([]);
  });

  it('Yama scope 3 stops everyone; what could not be read is no fix; not being root is said elsewhere', () => {
    const three = permissionFixes(true, { ...all, ptraceScope: 3 });
    expect(three).toHaveLength(1);
    expect(three[0]).toMatch(/ptrace_scope is 3.*reboots/);
    expect(permissionFixes(true, { sysPtrace: null, sysAdmin: null, seccomp: null, ptraceScope: null })).toEqual([]);
    expect(permissionFixes(false, { ...all, sysPtrace: false })).toEqual([]);
  });
});

/**
 * What `coldstart doctor` says about snapshots here: CRIU and its version, `criu check`, the driver's checkpoint API,
 * whether snapshot can learn a server's working set (process_madvise), root, what CRIU needs to seize a server (ptrace,
 * seccomp), and whether the VM hands free memory back to its hypervisor (free page reporting: CRIU's page restore
 * waits on the host's faults there).
 */
import { ColdstartError } from '../core/errors.js';
import { shippedPath, versionAtLeast } from '../core/version.js';
import type { SnapshotEngines } from './engines.js';
import { noCheckpointApi } from './native.js';
import { CAP_SYS_NICE, hasCapability, type TracerPermissions } from '../platform/procfs.js';

export interface SnapshotDoctor {
  criu: { found: boolean; path?: string; version?: string; reason?: string; check: string };
  checkpointApi: { available: boolean; reason?: string };
  /** Whether snapshot can learn a server's working set here (process_madvise: Linux 5.10+, CAP_SYS_NICE). */
  workingSetLearning: { available: boolean; reason?: string };
  root: boolean;
  /**
   * This VM's memory balloon hands free memory back to the hypervisor (platform/balloon.ts): restore --huge-pages then
   * waits on the host's faults (it says so); nothing is missing for that, so it is no fix.
   */
  freePageReporting: boolean;
  /** What CRIU needs of this process to seize and save a server it starts (permissionFixes says what is missing). */
  permissions: TracerPermissions;
  /** Each missing piece with its fix; empty when snapshot/restore (and park for GPU processes) work here. */
  fixes: string[];
}

/**
 * What CRIU will certainly be refused with when coldstart starts a server and CRIU (coldstart's child, the server's
 * sibling) seizes it — each the cause of failures users met (criu-log.ts rules `seize`, `seccomp-suspend`) — with its
 * fix; empty when nothing stands in the way or it could not be read. The kernel's rules (kernel/ptrace.c): Yama's
 * scope 3 forbids every attach; scopes 1 and 2 let a process attach to a non-descendant only with CAP_SYS_PTRACE; a
 * tracee's seccomp filter (the server inherits coldstart's) is suspended only by a tracer with CAP_SYS_ADMIN that runs
 * under no filter itself (check_ptrace_options).
 */
export function permissionFixes(root: boolean, p: TracerPermissions): string[] {
  const out: string[] = [];
  if (p.ptraceScope === 3) out.push(yama3('the server'));
  else if (root && p.sysPtrace === false && (p.ptraceScope === 1 || p.ptraceScope === 2)) out.push(`kernel.yama.ptrace_scope is ${p.ptraceScope} and coldstart lacks CAP_SYS_PTRACE (a default Docker container drops it), so CRIU, which is not the server's ancestor, cannot attach to it: ${ADD_PTRACE}`);
  if (p.seccomp === 2) out.push(`coldstart runs under a seccomp filter (a container's default profile), which the server inherits; the kernel lets CRIU suspend it only from outside any filter and with CAP_SYS_ADMIN, so the dump would fail with ${SUSPEND_REFUSED}: ${UNCONFINED}`);
  return out;
}

/**
 * What CRIU's restore will certainly be refused with here, before anything is restored: it seizes the tasks it forks
 * (its descendants), which Yama's scope 3 forbids to everyone and scope 2 to a process without CAP_SYS_PTRACE; and
 * where the image's tasks had seccomp filters (`imageSeccomp`: its seccomp.img lists some) it suspends them while it
 * finishes (cr-restore.c, PTRACE_O_SUSPEND_SECCOMP), which the kernel allows only to a tracer under no filter of its
 * own (check_ptrace_options) — "suspending seccomp failed: Operation not permitted" (criu-log.ts `seccomp-suspend`).
 */
export function restorePermissionFixes(p: TracerPermissions, imageSeccomp: boolean): string[] {
  const out: string[] = [];
  if (p.ptraceScope === 3) out.push(yama3('the tasks it restores'));
  else if (p.ptraceScope === 2 && p.sysPtrace === false) out.push(`kernel.yama.ptrace_scope is 2 (only CAP_SYS_PTRACE may attach) and coldstart lacks CAP_SYS_PTRACE (a default Docker container drops it), so CRIU cannot seize the tasks it restores: ${ADD_PTRACE}`);
  if (imageSeccomp && p.seccomp === 2) out.push(`the image's processes had seccomp filters, which CRIU suspends while it finishes the restore, and coldstart runs under a seccomp filter itself (a container's default profile): the kernel refuses that to a filtered tracer (${SUSPEND_REFUSED}): ${UNCONFINED}`);
  return out;
}

// The words snapshot's and restore's permission refusals share.
const yama3 = (whom: string): string => `kernel.yama.ptrace_scope is 3: no process may attach to another, root included, until the machine reboots with a lower setting; CRIU cannot seize ${whom}`;
const ADD_PTRACE = '--cap-add SYS_PTRACE, or run privileged';
const SUSPEND_REFUSED = '"suspending seccomp failed: Operation not permitted"';
const UNCONFINED = 'run coldstart unconfined (--security-opt seccomp=unconfined, or --privileged)';

/**
 * Refuses `command` before it touches anything (exit 3, ENV, `details.permissions`) where `refused` (permissionFixes or
 * restorePermissionFixes) names what CRIU would certainly be refused with; `nothing` says what was left untouched.
 */
export function refuseWhereCriuWouldBe(command: 'snapshot' | 'restore', permissions: TracerPermissions, refused: string[], nothing: string): void {
  if (refused.length) throw new ColdstartError('ENV', `${command}: CRIU would be refused here: ${refused[0]}`, { hint: [...refused.slice(1), nothing].join(' '), details: { permissions } });
}

export async function snapshotDoctor(env: Record<string, string | undefined>, engines: SnapshotEngines): Promise<SnapshotDoctor> {
  const root = engines.host.isRoot();
  const fixes: string[] = [];
  const f = await engines.criu.find(env);
  let check = 'not run';
  if (f.ok) {
    if (root) {
      const r = await engines.criu.check(f.criu, env);
      check = r.ok ? 'ok' : `failed: ${r.detail}`;
      if (!r.ok) fixes.push('`criu check` fails: this kernel lacks a feature CRIU needs (see its output)');
    } else check = 'not run: needs root';
    const recent = versionAtLeast(f.criu.version, 4, 2);
    const install = `install 4.2 or newer (eval "$(${shippedPath('scripts/ci-criu.sh')})")`;
    if (recent === false) fixes.push(`CRIU ${f.criu.version} cannot dump TCP sockets on Linux 6.16+: ${install}`);
    if (recent === null) fixes.push(`CRIU's version was not read ("${f.criu.version}"); 4.2 or newer is needed to dump TCP sockets on Linux 6.16+: ${install}`);
  } else fixes.push(`CRIU: ${f.reason}; eval "$(${shippedPath('scripts/ci-criu.sh')})" fetches Debian forky's criu 4.2 and sets COLDSTART_CRIU`);
  if (!root) fixes.push('snapshot/restore/park need root (CRIU and the driver act on other processes)');
  let checkpointApi: SnapshotDoctor['checkpointApi'] = { available: false, reason: 'native addon unavailable' };
  if (!engines.native.unavailable()) {
    try {
      await engines.native.checkpoint(process.pid, 'state');
      checkpointApi = { available: true };
    } catch (e) {
      // The driver's own words ("not available: no CUDA driver …"), without the pid this probe happened to ask about.
      const said = ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
      checkpointApi = noCheckpointApi(e) ? { available: false, reason: said } : { available: true };
    }
  }
  if (!checkpointApi.available) fixes.push(`GPU servers (snapshot of CUDA processes, park/unpark) need an NVIDIA driver 570 or newer: ${checkpointApi.reason ?? 'not available'}`);
  const permissions = engines.host.tracerPermissions();
  fixes.push(...permissionFixes(root, permissions));
  const workingSetLearning = learningHere(engines.host.kernelRelease(), hasCapability(CAP_SYS_NICE));
  if (!workingSetLearning.available) fixes.push(`snapshot records every page of the server's files, and an image's first cold restore reads them all: ${workingSetLearning.reason}`);
  return { criu: f.ok ? { found: true, path: f.criu.path, version: f.criu.version, check } : { found: false, reason: f.reason, check }, checkpointApi, workingSetLearning, permissions, root, freePageReporting: engines.host.freePageReporting(), fixes };
}

/** Whether snapshot.ts's learnWorkingSet can page out another process's pages here, and if not, why. */
export function learningHere(kernel: string, sysNice: boolean | null): SnapshotDoctor['workingSetLearning'] {
  const recent = versionAtLeast(kernel, 5, 10);
  if (recent !== true) return { available: false, reason: recent === null ? `the kernel's release "${kernel}" was not read, so process_madvise (Linux 5.10 or newer) cannot be assumed` : `Linux ${kernel} has no process_madvise (5.10 or newer has)` };
  if (sysNice === false) return { available: false, reason: 'coldstart lacks CAP_SYS_NICE, which process_madvise needs to page out another process (run as root, or add the capability to the container)' };
  return sysNice === null ? { available: true, reason: 'CAP_SYS_NICE not read (/proc/self/status): assumed' } : { available: true };
}

import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAP_SYS_NICE, charDevices, childPids, ptraceScope, seccompMode, tracerPermissions, cpuFlags, fdTargets, processCommand, hasCapability, parseProcStat, procStartTicks, processEnded, processTree, readProcStat, uptimeSeconds } from '../../src/platform/procfs.js';
import { processStart } from '../../src/cache/lock.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-procfs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A stat line as the kernel writes it: 52 fields, field 22 the start time. */
const statLine = (pid: number, comm: string, state: string, ppid: number, start: number) =>
  `${pid} (${comm}) ${state} ${ppid} ${Array.from({ length: 17 }, (_, i) => i + 100).join(' ')} ${start} ${Array.from({ length: 30 }, () => 0).join(' ')}\n`;

describe('the one /proc/<pid>/stat parser', () => {
  it('reads pid, comm, state, ppid and start time; comm ends at the last ")" (spaces and parentheses in names)', () => {
    for (const comm of ['node', 'tini (init) x', 'a) (b', ') S 1 2 3', 'with space']) {
      expect(parseProcStat(statLine(42, comm, 'S', 7, 123456))).toEqual({ pid: 42, comm, state: 'S', ppid: 7, startTicks: 123456, startSeconds: 1234.56, exitStatus: 0 });
    }
    expect(parseProcStat(statLine(9, 'z', 'Z', 1, 5))!.state).toBe('Z');
  });

  it('refuses what is not a stat line (null, never a zero)', () => {
    for (const bad of ['', 'garbage', '12 (x) S', '12 (x) S 1', 'x (y) S 1 2', statLine(1, 'x', 'S', 0, 5).replace(' 5 ', ' five ')]) expect(parseProcStat(bad), bad).toBeNull();
    expect(readProcStat(1, join(tmp, 'nowhere'))).toBeNull();
    expect(procStartTicks(1, join(tmp, 'nowhere'))).toBeNull();
    expect(uptimeSeconds(join(tmp, 'nowhere'))).toBeNull();
  });

  it('tells an ended process (gone, or a zombie) and the signal that ended a zombie (field 52, its exit status)', async () => {
    // A child killed by SIGILL that its parent has not reaped: a zombie whose exit status holds the signal.
    const py = spawn('python3', ['-c', 'import os, signal, sys, time\npid = os.fork()\nif pid == 0:\n    os.kill(os.getpid(), signal.SIGILL)\nprint(pid, flush=True)\ntime.sleep(30)'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((r) => py.stdout.once('data', (b: Buffer) => r(b.toString()))));
      let end = processEnded(pid);
      for (let i = 0; i < 100 && !end.ended; i++) await new Promise((r) => setTimeout(r, 20)), (end = processEnded(pid));
      expect(end).toEqual({ ended: true, signal: 4 });
      expect(readProcStat(pid)!.state).toBe('Z');
      expect(processEnded(py.pid!)).toEqual({ ended: false, signal: null });
    } finally {
      py.kill('SIGKILL');
    }
    expect(processEnded(1 << 22, join(tmp, 'nowhere'))).toEqual({ ended: true, signal: null });
    // A zombie that exited by itself: ended, no signal.
    expect(parseProcStat(statLine(9, 'z', 'Z', 1, 5).replace(/ 0\n$/, ' 768\n'))!.exitStatus).toBe(768);
    const fake = join(tmp, 'zproc');
    mkdirSync(join(fake, '9'), { recursive: true });
    writeFileSync(join(fake, '9', 'stat'), statLine(9, 'z', 'Z', 1, 5).replace(/ 0\n$/, ' 768\n'));
    expect(processEnded(9, fake)).toEqual({ ended: true, signal: null });
    writeFileSync(join(fake, '9', 'stat'), statLine(9, 'z', 'Z', 1, 5).replace(/ 0\n$/, ' 4\n'));
    expect(processEnded(9, fake)).toEqual({ ended: true, signal: 4 });
  });

  it('reads the CPU feature flags from cpuinfo (empty where there are none)', () => {
    const fake = join(tmp, 'cpu');
    mkdirSync(fake, { recursive: true });
    writeFileSync(join(fake, 'cpuinfo'), 'processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx2 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n');
    expect([...cpuFlags(fake)]).toEqual(['fpu', 'sse2', 'avx2', 'amx_tile']);
    expect(cpuFlags(join(tmp, 'nowhere')).size).toBe(0);
    if (process.arch === 'x64') expect(cpuFlags().has('sse2')).toBe(true);
  });

  it('agrees with the kernel for this process and with the lock owner check', () => {
    const me = readProcStat('self')!;
    expect(me.pid).toBe(process.pid);
    expect(me.ppid).toBe(process.ppid);
    expect(me.state).toMatch(/^[RS]$/);
    expect(me.startSeconds).toBeLessThanOrEqual(uptimeSeconds()!);
    expect(processStart('self')).toBe(String(me.startTicks));
    // Field 22 counted by hand from the raw line.
    const raw = readFileSync('/proc/self/stat', 'utf8');
    expect(me.startTicks).toBe(Number(raw.slice(raw.lastIndexOf(')') + 2).split(' ')[19]));
  });

  it('walks a process tree breadth first, every thread\'s children, each pid once', () => {
    // Fake /proc: 1 → (2, 3 via another thread) ; 2 → 4 ; 4 lists 2 again (a reused pid must not loop).
    const root = join(tmp, 'tree');
    const kids = (pid: number, tid: number, c: number[]) => {
      mkdirSync(join(root, String(pid), 'task', String(tid)), { recursive: true });
      writeFileSync(join(root, String(pid), 'task', String(tid), 'children'), c.length ? `${c.join(' ')} ` : '');
    };
    kids(1, 1, [2]);
    kids(1, 11, [3]);
    kids(2, 2, [4]);
    kids(4, 4, [2]);
    expect(childPids(1, root).sort()).toEqual([2, 3]);
    expect(processTree(1, root)).toEqual([1, 2, 3, 4]);
    expect(processTree(99, root)).toEqual([99]);
  });

  it('finds a real grandchild started by a shell', async () => {
    const child = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
    try {
      let tree: number[] = [];
      // Until the forked shell has exec'd sleep (under load the fork is seen first, still named sh).
      for (let i = 0; i < 200 && (tree.length < 2 || readProcStat(tree[1]!)?.comm !== 'sleep'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        tree = processTree(child.pid!);
      }
      expect(tree[0]).toBe(child.pid);
      expect(tree.length).toBe(2);
      expect(readProcStat(tree[1]!)!.ppid).toBe(child.pid);
      expect(readProcStat(tree[1]!)!.comm).toBe('sleep');
      for (const p of tree.reverse()) process.kill(p, 'SIGKILL');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe("capabilities and the kernel's release: what snapshot's working-set learning needs (process_madvise)", () => {
  it('reads CapEff from /proc/<pid>/status: a set bit, a clear one, no line, no file; this process as the kernel says', () => {
    const root = mkdtempSync(join(tmpdir(), 'cs-caps-'));
    try {
      const status = (capEff: string | null) => ['Name:\tpython3', 'Uid:\t0\t0\t0\t0', ...(capEff === null ? [] : [`CapEff:\t${capEff}`]), 'Seccomp:\t0', ''].join('\n');
      for (const [pid, capEff] of [[1, '000001ffffffffff'], [2, '00000000a80425fb'], [3, null]] as const) {
        mkdirSync(join(root, String(pid)));
        writeFileSync(join(root, String(pid), 'status'), status(capEff));
      }
      expect(hasCapability(CAP_SYS_NICE, 1, root)).toBe(true);
      expect(hasCapability(CAP_SYS_NICE, 2, root)).toBe(false); // Docker's default set: no CAP_SYS_NICE
      expect(hasCapability(0, 2, root)).toBe(true); // CAP_CHOWN is in it
      expect(hasCapability(CAP_SYS_NICE, 3, root)).toBeNull();
      expect(hasCapability(CAP_SYS_NICE, 4, root)).toBeNull();
      const mine = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
      expect(hasCapability(CAP_SYS_NICE)).toBe(((BigInt(`0x${mine}`) >> 23n) & 1n) === 1n);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a process's descriptors and command line", () => {
  it('fdTargets: where each descriptor points (a file this process opened among them); empty for a gone process', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-fdtargets-'));
    const file = join(dir, 'held');
    writeFileSync(file, 'x');
    const fd = openSync(file, 'r');
    try {
      expect(fdTargets(process.pid)).toContain(file);
      let gone = 999999;
      while (readProcStat(gone)) gone++;
      expect(fdTargets(gone)).toEqual([]);
      // a fake /proc: links as the kernel shows them, the same reading
      const fake = join(dir, 'proc');
      mkdirSync(join(fake, '7', 'fd'), { recursive: true });
      symlinkSync('socket:[4242]', join(fake, '7', 'fd', '3'));
      symlinkSync('/dev/nvidiactl', join(fake, '7', 'fd', '4'));
      expect(fdTargets(7, fake).sort()).toEqual(['/dev/nvidiactl', 'socket:[4242]']);
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('processCommand: the arguments joined, cut at the limit; empty for a gone process', () => {
    expect(processCommand(process.pid)).toContain('node');
    expect(processCommand(process.pid, 5).length).toBeLessThanOrEqual(5);
    let gone = 999999;
    while (readProcStat(gone)) gone++;
    expect(processCommand(gone)).toBe('');
  });
});


describe('charDevices: the character-device majors by name (/proc/devices)', () => {
  const root = (text: string) => {
    const dir = mkdtempSync(join(tmp, 'devices-'));
    writeFileSync(join(dir, 'devices'), text);
    return dir;
  };

  it("reads a real kernel's list (the dev VM's): character majors only, the block section left out", () => {
    const text = readFileSync(new URL('../../fixtures/procfs/devices-firecracker-dev-vm', import.meta.url), 'utf8');
    const d = charDevices(root(text));
    expect(d.get(1)).toBe('mem');
    expect(d.get(10)).toBe('misc');
    expect(d.get(136)).toBe('pts');
    expect(d.get(4)).toBe('/dev/vc/0'); // listed twice (4 /dev/vc/0, 4 tty): the first name stays
    const block = text.slice(text.indexOf('Block devices:'));
    for (const m of block.matchAll(/^\s*(\d+)\s+(\S+)$/gm)) expect(d.get(Number(m[1])), m[0]).not.toBe(m[2]);
  });

  it("names a driver's majors by their whole name (nvidia ≥ 550 lists 195 twice; nvidia-caps-imex-channels is not nvidia-caps)", () => {
    // Lines as NVIDIA's driver writes them (nvidia-container-toolkit#324, dra-driver-nvidia-gpu#304).
    const d = charDevices(root('Character devices:\n  1 mem\n195 nvidia\n195 nvidiactl\n234 nvidia-caps-imex-channels\n506 gdrdrv\n510 nvidia-uvm\n511 nvidia-caps\n\nBlock devices:\n  8 sd\n'));
    expect([...d]).toEqual([[1, 'mem'], [195, 'nvidia'], [234, 'nvidia-caps-imex-channels'], [506, 'gdrdrv'], [510, 'nvidia-uvm'], [511, 'nvidia-caps']]);
  });

  it('is empty, never a throw, where /proc/devices cannot be read', () => {
    expect(charDevices(join(tmp, 'nowhere')).size).toBe(0);
  });
});

describe('seccompMode and ptraceScope', () => {
  it("read this process's seccomp mode (a number 0-2) and a fake tree's values; null where there is nothing to read", () => {
    expect([0, 1, 2]).toContain(seccompMode());
    const root = mkdtempSync(join(tmp, 'sec-'));
    mkdirSync(join(root, '42'));
    writeFileSync(join(root, '42', 'status'), 'Name:\tpython3\nSeccomp:\t2\nSeccomp_filters:\t1\n');
    expect(seccompMode(42, root)).toBe(2);
    expect(seccompMode(43, root)).toBeNull();
    mkdirSync(join(root, 'sys', 'kernel', 'yama'), { recursive: true });
    writeFileSync(join(root, 'sys', 'kernel', 'yama', 'ptrace_scope'), '3\n');
    expect(ptraceScope(root)).toBe(3);
    expect(ptraceScope(join(root, 'nowhere'))).toBeNull();
    // A default Docker container's CapEff (CAP_SYS_PTRACE 19 and CAP_SYS_ADMIN 21 dropped) under its seccomp profile.
    mkdirSync(join(root, 'self'));
    writeFileSync(join(root, 'self', 'status'), 'Name:\tnode\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n');
    expect(tracerPermissions(root)).toEqual({ sysPtrace: false, sysAdmin: false, seccomp: 2, ptraceScope: 3 });
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids, parseProcStat, procStartTicks, processTree, readProcStat, uptimeSeconds } from '../../src/platform/procfs.js';
import { processStart } from '../../src/cache/lock.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-procfs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A stat line as the kernel writes it: 52 fields, field 22 the start time. */
const statLine = (pid: number, comm: string, state: string, ppid: number, start: number) =>
  `${pid} (${comm}) ${state} ${ppid} ${Array.from({ length: 17 }, (_, i) => i + 100).join(' ')} ${start} ${Array.from({ length: 30 }, () => 0).join(' ')}\n`;

describe('the one /proc/<pid>/stat parser', () => {
  it('reads pid, comm, state, ppid and start time; comm ends at the last ")" (spaces and parentheses in names)', () => {
    for (const comm of ['node', 'tini (init) x', 'a) (b', ') S 1 2 3', 'with space']) {
      expect(parseProcStat(statLine(42, comm, 'S', 7, 123456))).toEqual({ pid: 42, comm, state: 'S', ppid: 7, startTicks: 123456, startSeconds: 1234.56 });
    }
    expect(parseProcStat(statLine(9, 'z', 'Z', 1, 5))!.state).toBe('Z');
  });

  it('refuses what is not a stat line (null, never a zero)', () => {
    for (const bad of ['', 'garbage', '12 (x) S', '12 (x) S 1', 'x (y) S 1 2', statLine(1, 'x', 'S', 0, 5).replace(' 5 ', ' five ')]) expect(parseProcStat(bad), bad).toBeNull();
    expect(readProcStat(1, join(tmp, 'nowhere'))).toBeNull();
    expect(procStartTicks(1, join(tmp, 'nowhere'))).toBeNull();
    expect(uptimeSeconds(join(tmp, 'nowhere'))).toBeNull();
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

/**
 * memoryRoom (src/platform/system.ts): the memory a process can still take, host or cgroup, for `prefetch --hold`'s
 * refusal and restore's check. Fake /proc and /sys/fs/cgroup trees in the layouts the kernel writes (the v1 values
 * are this dev VM's, 2026-12-07: a libpod container's memory cgroup under a hybrid hierarchy), and a lent H100 host's
 * real cgroup v2 files (fixtures/cgroup/h100-host-2026-12-07, .source beside it).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryRoom } from '../../src/platform/system.js';

const GiB = 2 ** 30;
const H100_HOST = fileURLToPath(new URL('../../fixtures/cgroup/h100-host-2026-12-07', import.meta.url));
const H100_LEAF = 'sys-fs-cgroup/process_api/47714419fae14c1d913e465133587b23';
let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));

function tree(files: Record<string, string>): { proc: string; cg: string } {
  root = mkdtempSync(join(tmpdir(), 'cs-memroom-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return { proc: join(root, 'proc'), cg: join(root, 'cg') };
}
const meminfo = (total: number, avail: number) => `MemTotal:       ${total / 1024} kB\nMemFree:        1024 kB\nMemAvailable:   ${avail / 1024} kB\nUnevictable:       0 kB\n`;

describe('memoryRoom', () => {
  it('no cgroup limit: the host\'s MemAvailable of MemTotal', () => {
    const t = tree({ 'proc/meminfo': meminfo(125 * GiB, 100 * GiB), 'proc/self/cgroup': '0::/\n', 'cg/memory.stat': 'file 0\n' });
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 100 * GiB, totalBytes: 125 * GiB, by: 'host' });
  });

  it('cgroup v2: a pod\'s memory.max binds, its page cache counted as reclaimable, locked pages not; the tightest limit on the way up wins', () => {
    const t = tree({
      'proc/meminfo': meminfo(125 * GiB, 100 * GiB),
      'proc/self/cgroup': '0::/kubepods/pod1/c1\n',
      'cg/kubepods/memory.max': 'max\n',
      'cg/kubepods/pod1/memory.max': `${16 * GiB}\n`,
      'cg/kubepods/pod1/memory.current': `${10 * GiB}\n`,
      'cg/kubepods/pod1/memory.stat': `anon ${4 * GiB}\nfile ${6 * GiB}\nunevictable ${2 * GiB}\n`,
      'cg/kubepods/pod1/c1/memory.max': 'max\n',
    });
    // 16 − 10 + 6 (page cache) − 2 (locked) = 10 GiB
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 10 * GiB, totalBytes: 16 * GiB, by: 'cgroup' });
  });

  it('cgroup v1 (hybrid): memory.limit_in_bytes at the path /proc/self/cgroup names; "no limit" (~2^63) is none', () => {
    const files = {
      'proc/meminfo': meminfo(25276182528, 24765997056),
      'proc/self/cgroup': '9:name=systemd:/\n4:memory:/process_api/8e9b\n0::/\n',
      'cg/memory/memory.limit_in_bytes': '9223372036854771712\n',
      'cg/memory/process_api/8e9b/memory.limit_in_bytes': '9223372036854771712\n',
      'cg/memory/process_api/8e9b/memory.usage_in_bytes': '1389752320\n',
      'cg/memory/process_api/8e9b/memory.stat': 'cache 1357852672\ntotal_cache 1357852672\ntotal_unevictable 0\n',
    };
    let t = tree(files);
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 24765997056, totalBytes: 25276182528, by: 'host' });
    rmSync(root, { recursive: true, force: true });
    t = tree({ ...files, 'cg/memory/process_api/8e9b/memory.limit_in_bytes': `${4 * GiB}\n` });
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 4 * GiB - 1389752320 + 1357852672, totalBytes: 4 * GiB, by: 'cgroup' });
  });

  it('cgroup v1 in a container (its own cgroup mounted as the root): the mount root\'s limit', () => {
    const t = tree({
      'proc/meminfo': meminfo(125 * GiB, 100 * GiB),
      'proc/self/cgroup': '5:memory,hugetlb:/docker/abc\n',
      'cg/memory/memory.limit_in_bytes': `${8 * GiB}\n`,
      'cg/memory/memory.usage_in_bytes': `${3 * GiB}\n`,
      'cg/memory/memory.stat': `total_cache ${1 * GiB}\ntotal_unevictable 0\n`,
    });
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 6 * GiB, totalBytes: 8 * GiB, by: 'cgroup' });
  });

  it('a lent GPU host\'s own files (cgroup v2, the per-call cgroup without a limit): the host\'s numbers; a limit written into that leaf binds', () => {
    root = mkdtempSync(join(tmpdir(), 'cs-memroom-'));
    cpSync(H100_HOST, root, { recursive: true });
    const proc = join(root, 'proc'), cg = join(root, 'sys-fs-cgroup');
    expect(memoryRoom(proc, cg)).toEqual({ availableBytes: 131450680 * 1024, totalBytes: 131961972 * 1024, by: 'host' });
    writeFileSync(join(root, H100_LEAF, 'memory.max'), `${2 * GiB}\n`);
    // 2 GiB − 108797952 in use + 99356672 of it page cache (no unevictable line: nothing locked)
    expect(memoryRoom(proc, cg)).toEqual({ availableBytes: 2 * GiB - 108797952 + 99356672, totalBytes: 2 * GiB, by: 'cgroup' });
  });

  it('null without a readable /proc/meminfo; a cgroup file that cannot be read is no limit', () => {
    let t = tree({ 'proc/self/cgroup': '0::/\n' });
    expect(memoryRoom(t.proc, t.cg)).toBeNull();
    rmSync(root, { recursive: true, force: true });
    t = tree({ 'proc/meminfo': meminfo(8 * GiB, 6 * GiB), 'proc/self/cgroup': '0::/a\n', 'cg/a/memory.max': `${GiB}\n` });
    expect(memoryRoom(t.proc, t.cg)).toEqual({ availableBytes: 6 * GiB, totalBytes: 8 * GiB, by: 'host' });
  });
});

import { existsSync, readFileSync, statfsSync, realpathSync, statSync } from 'node:fs';
import { basename } from 'node:path';

export interface DiskInfo {
  path: string;
  mount: string | null;
  fsType: string | null;
  device: string | null;
  totalBytes: number | null;
  freeBytes: number | null;
  /** true for spinning disks, false for SSD/NVMe, null when unknown (network, overlay, tmpfs). */
  rotational: boolean | null;
}

interface Mount {
  device: string;
  mount: string;
  fsType: string;
}

function mounts(): Mount[] {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [device, mount, fsType] = l.split(' ');
        return { device: device!, mount: (mount ?? '').replace(/\\040/g, ' '), fsType: fsType! };
      });
  } catch {
    return [];
  }
}

/** The longest mount point containing `path`. */
function mountFor(path: string, all: Mount[]): Mount | null {
  let best: Mount | null = null;
  for (const m of all) {
    const prefix = m.mount.endsWith('/') ? m.mount : `${m.mount}/`;
    if ((path === m.mount || path.startsWith(prefix) || m.mount === '/') && (!best || m.mount.length >= best.mount.length)) best = m;
  }
  return best;
}

function rotationalOf(device: string | null): boolean | null {
  if (!device || !device.startsWith('/dev/')) return null;
  let name = basename(device);
  try {
    name = basename(realpathSync(device));
  } catch {
    /* keep name */
  }
  const candidates = [name, name.replace(/p?\d+$/, '')];
  for (const c of candidates) {
    const f = `/sys/block/${c}/queue/rotational`;
    if (existsSync(f)) return readFileSync(f, 'utf8').trim() === '1';
  }
  return null;
}

/** Free/total space, filesystem and disk kind for the filesystem holding `path` (its nearest existing parent). */
export function diskInfo(path: string): DiskInfo {
  let p = path;
  while (!existsSync(p) && p !== '/') p = p.replace(/\/[^/]*\/?$/, '') || '/';
  let real = p;
  try {
    real = realpathSync(p);
  } catch {
    /* keep */
  }
  const m = mountFor(real, mounts());
  let totalBytes: number | null = null;
  let freeBytes: number | null = null;
  try {
    const s = statfsSync(real);
    totalBytes = s.blocks * s.bsize;
    freeBytes = s.bavail * s.bsize;
  } catch {
    /* unknown */
  }
  return { path, mount: m?.mount ?? null, fsType: m?.fsType ?? null, device: m?.device ?? null, totalBytes, freeBytes, rotational: rotationalOf(m?.device ?? null) };
}

/** Are we inside a container? (docker/podman markers, or a cgroup path naming a runtime). */
export function containerRuntime(): string | null {
  if (existsSync('/.dockerenv')) return 'docker';
  if (existsSync('/run/.containerenv')) return 'podman';
  try {
    const cg = readFileSync('/proc/1/cgroup', 'utf8');
    for (const k of ['docker', 'kubepods', 'containerd', 'libpod', 'lxc']) if (cg.includes(k)) return k;
  } catch {
    /* not linux */
  }
  return null;
}

export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------- memory

/** Memory a process here can still take, and of how much, from the host or from its cgroup's limit. */
export interface MemoryRoom {
  /** What can still be taken without the kernel reclaiming anything but clean page cache. */
  availableBytes: number;
  /** Of how much: the host's MemTotal, or the cgroup's limit where that is what binds. */
  totalBytes: number;
  /**
   * Which side binds: the host (MemAvailable), or a cgroup limit on the way up (v2 memory.max, v1
   * memory.limit_in_bytes: a container's, a pod's).
   */
  by: 'host' | 'cgroup';
}

function meminfoKiB(text: string, key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** One cgroup's room: its limit less what it uses beyond its reclaimable page cache; null without a limit. */
function cgroupRoom(limit: string | undefined, current: string | undefined, stat: string, names: { file: string; unevictable: string }): { free: number; limit: number } | null {
  if (!limit || !/^\d+$/.test(limit) || Number(limit) >= 2 ** 60) return null; // "max" (v2), or v1's "none" (~2^63)
  const used = Number(current);
  if (!Number.isFinite(used)) return null;
  const field = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
  return { free: Math.max(0, Number(limit) - used + field(names.file) - field(names.unevictable)), limit: Number(limit) };
}

/**
 * The memory a process here can still take: the host's MemAvailable and every cgroup memory limit from its cgroup up
 * to the root (v2 memory.max; v1 memory.limit_in_bytes, its path as /proc/self/cgroup names it or the mount's root
 * in a container), each less what that cgroup uses beyond its reclaimable page cache (current − file + unevictable,
 * from memory.stat); the smallest. Null when the host's cannot be read. A page locked in memory (an earlier
 * `prefetch --hold`) is not available on either side.
 */
export function memoryRoom(procRoot = '/proc', cgroupRoot = '/sys/fs/cgroup'): MemoryRoom | null {
  const meminfo = readOrNull(`${procRoot}/meminfo`);
  const avail = meminfo ? meminfoKiB(meminfo, 'MemAvailable') : null;
  const total = meminfo ? meminfoKiB(meminfo, 'MemTotal') : null;
  if (avail === null || total === null) return null;
  let room: MemoryRoom = { availableBytes: avail, totalBytes: total, by: 'host' };
  const take = (r: { free: number; limit: number } | null) => {
    if (r && r.free < room.availableBytes) room = { availableBytes: r.free, totalBytes: r.limit, by: 'cgroup' };
  };
  const cgroups = readOrNull(`${procRoot}/self/cgroup`) ?? '';
  const read = (dir: string, f: string) => readOrNull(`${dir}/${f}`)?.trim();
  // cgroup v2: "0::/path", memory.max in every cgroup on the way up.
  const v2 = /^0::(\/.*)$/m.exec(cgroups)?.[1];
  if (v2 !== undefined) {
    const parts = v2.split('/').filter(Boolean);
    for (let n = parts.length; n >= 0; n--) {
      const dir = [cgroupRoot, ...parts.slice(0, n)].join('/');
      take(cgroupRoom(read(dir, 'memory.max'), read(dir, 'memory.current'), read(dir, 'memory.stat') ?? '', { file: 'file', unevictable: 'unevictable' }));
    }
  }
  // cgroup v1: "N:memory:/path" (memory possibly among other controllers); its hierarchical totals.
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(\/.*)$/m.exec(cgroups)?.[1];
  if (v1 !== undefined) {
    for (const dir of new Set([`${cgroupRoot}/memory${v1 === '/' ? '' : v1}`, `${cgroupRoot}/memory`])) {
      take(cgroupRoom(read(dir, 'memory.limit_in_bytes'), read(dir, 'memory.usage_in_bytes'), read(dir, 'memory.stat') ?? '', { file: 'total_cache', unevictable: 'total_unevictable' }));
    }
  }
  return room;
}

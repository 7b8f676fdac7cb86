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

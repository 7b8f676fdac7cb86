/**
 * `coldstart prefetch --hold`: what prefetch read, kept in memory until the command is stopped (SIGINT/SIGTERM).
 * The files are mapped and locked (native/src/pagecache.cc `holdResident`: mlock), so the page cache keeps them
 * whatever else the node's memory is asked for, and a restore from an image (or a server's load of weights) reads
 * memory. The page cache alone gives no such promise: under memory pressure the kernel drops clean file pages first,
 * and a "warm node" restore becomes a cold-disk one without a word.
 *
 * The held files are watched: when one changes (a snapshot taken again over the image, weights replaced), the target
 * is read and held again and the old pages let go; when it is gone, they are let go until it is back.
 */
import { statSync, type Stats } from 'node:fs';
import { sleep } from '../core/clock.js';
import { formatBytes } from '../core/format.js';
import { ColdstartError } from '../core/errors.js';
import { callNative, type NativeAddon, type NativeHold } from '../native.js';
import { memoryRoom, type MemoryRoom } from '../platform/system.js';

/** What a hold holds now: counted when it was taken. */
export interface HeldNow {
  files: number;
  bytes: number;
  /** Seconds the lock took (the files were read into the page cache first). */
  seconds: number;
}

export interface HoldOptions {
  /** Reads the target into the page cache again (prefetch, with its checks) and returns the paths it read. */
  read: () => Promise<string[]>;
  /** Stops the hold (the CLI's SIGINT/SIGTERM). */
  signal: AbortSignal;
  /** One line for each change while held (stderr). */
  say: (line: string) => void;
  /** Seconds between looks at the files (default 2). */
  pollSeconds?: number;
  addon: Pick<NativeAddon, 'holdResident' | 'releaseResident'>;
  /** What the hold is of, in its lines (the target as given). */
  what: string;
  /** The memory that can still be taken (default: memoryRoom, the host's or the cgroup's). */
  room?: () => MemoryRoom | null;
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

/** Each path's identity (device, inode, size, mtime); '-' for one that is gone. A change in any is a change. */
function identity(paths: readonly string[]): string {
  return paths
    .map((p) => {
      const st = statOrNull(p);
      return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}` : '-';
    })
    .join('|');
}

const MLOCK_HINT = 'Holding files in memory locks them (mlock): run as root or with CAP_IPC_LOCK (Kubernetes: securityContext.capabilities.add: ["IPC_LOCK"]), or raise the limit (`ulimit -l`, a container\'s --ulimit memlock=-1).';

/** What stays free however much is held: 5 % of the memory that binds (the host's, or a cgroup's limit), at least 512 MiB. */
export function holdReserveBytes(totalBytes: number): number {
  return Math.max(512 * 2 ** 20, 0.05 * totalBytes);
}

/**
 * Locks `paths` in memory, unless that would leave less than the reserve available to everything else (ENV, exit 3,
 * nothing held): locked pages cannot be reclaimed, so holding more than fits would push the node's (or the pod's)
 * processes into reclaim or the OOM killer. PERMISSION (exit 3) past RLIMIT_MEMLOCK without CAP_IPC_LOCK.
 */
export async function holdFiles(addon: HoldOptions['addon'], paths: string[], room: () => MemoryRoom | null = memoryRoom): Promise<{ hold: NativeHold; now: HeldNow }> {
  const bytes = paths.reduce((a, p) => a + (statOrNull(p)?.size ?? 0), 0); // one gone since: the lock names it
  const r = room();
  if (r) {
    const reserve = holdReserveBytes(r.totalBytes);
    if (r.availableBytes - bytes < reserve) {
      throw new ColdstartError('ENV', `prefetch --hold: holding ${formatBytes(bytes)} would leave ${formatBytes(Math.max(0, r.availableBytes - bytes))} of memory available (${r.by === 'cgroup' ? "this process's cgroup limit" : 'the host'}: ${formatBytes(r.availableBytes)} available of ${formatBytes(r.totalBytes)}; at least ${formatBytes(reserve)} stays free): nothing was held`, {
        hint: 'Hold less (a smaller image: snapshot with --before-snapshot hooks), free memory, or raise the memory limit of the container or pod.',
      });
    }
  }
  const h = await callNative(() => addon.holdResident({ paths }), 'prefetch --hold').catch((e: unknown) => {
    // nativeError's hint for PERMISSION is about file modes; a refused lock wants the lock's own fixes.
    if (e instanceof ColdstartError && e.code === 'PERMISSION') throw new ColdstartError('PERMISSION', e.message, { cause: e, details: e.details, hint: MLOCK_HINT });
    throw e;
  });
  return { hold: h.hold, now: { files: h.files, bytes: h.bytes, seconds: h.seconds } };
}

/**
 * Holds what `first` locked until the signal aborts, following the files as they change: when one of them does (or
 * goes), the target is read again and the new files held, the old let go. Rejects only with the signal's reason; a
 * read or hold that fails is said, the old pages let go (they are no longer the target's), and tried again at the
 * files' next change.
 */
export async function holdUntilStopped(first: { hold: NativeHold; paths: string[] }, o: HoldOptions): Promise<never> {
  let held: NativeHold | null = first.hold;
  let watched = first.paths;
  let seen = identity(watched);
  let failing: string | null = null;
  const every = o.pollSeconds ?? 2;
  try {
    for (;;) {
      await sleep(every * 1000, o.signal);
      const now = identity(watched);
      if (now === seen) continue;
      seen = now; // this state of the files is tried once
      // The old pages go first: they are no longer the target's, and the new ones may need their room.
      const letGo = held ? o.addon.releaseResident(held) : null;
      held = null;
      try {
        const paths = await o.read();
        const next = await holdFiles(o.addon, paths, o.room);
        held = next.hold;
        watched = paths;
        seen = identity(paths);
        failing = null;
        o.say(`${o.what} changed: read and held again (${formatBytes(next.now.bytes)} in ${next.now.files} file(s))`);
      } catch (e) {
        if (o.signal.aborted) throw e;
        const why = (e as Error).message;
        if (letGo !== null) o.say(`${o.what} changed and cannot be held now, so its old pages (${formatBytes(letGo)}) were let go: ${why}; held again once its files change`);
        else if (failing !== why) o.say(`${o.what}: still cannot be held: ${why}`);
        failing = why;
      }
    }
  } finally {
    if (held) o.addon.releaseResident(held);
  }
}

/**
 * restore's warm-up of free memory (`--warm-memory auto|on|off`). In a VM whose memory balloon reports free pages to
 * the hypervisor (platform/balloon.ts), memory left free for a couple of seconds in 2 MiB blocks goes back to the
 * host, and the next process to fault such a block in pays the host's fault as well. CRIU's restorer fills the
 * restored memory on one thread, with huge pages under `--huge-pages`, so it runs at that rate: on the development VM
 * a 1 GiB image restored in 2.27–2.58 s with the memory cold and in 0.88–1.09 s right after the same memory had been
 * faulted in and freed (2026-12-07, bench/snapshot/warm-memory.sh). So restore first faults in, on several threads,
 * as much fresh memory as CRIU will fill (the image's page data) and a quarter more (what the server allocates as it
 * wakes, e.g. a loader's pinned ring), and frees it; CRIU's faults then take those pages while they are still backed.
 * `auto` does this only where it can help: free page reporting on, and `--huge-pages` (4 KiB pages are not handed
 * back). The decision is here; the touching is native/src/memwarm.cc's.
 */
import { formatBytes } from '../core/format.js';

export const WARM_MEMORY_MODES = ['auto', 'on', 'off'] as const;
export type WarmMemoryMode = (typeof WARM_MEMORY_MODES)[number];

/** At most this many threads fault the memory in (a few are enough to outrun CRIU's one). */
export const WARM_MEMORY_MAX_THREADS = 8;

export type WarmMemoryPlan = { bytes: number; threads: number } | { skipped: string };
/** What restore reports: the memory touched and freed (native), why none was, or why warming failed. */
export type WarmMemoryDetail = { bytes: number; threads: number; touchSeconds: number; seconds: number } | { skipped: string } | { error: string };

/**
 * How much memory to warm on how many threads, or why none. `pageBytes`: the image's page data; `imageBytes`: the
 * whole image (restore has already checked that much is available); `availableBytes`: MemAvailable (null: unknown).
 */
export function planWarmMemory(o: { mode: WarmMemoryMode; hugePages: boolean; reporting: boolean; pageBytes: number; imageBytes: number; availableBytes: number | null; cores: number }): WarmMemoryPlan {
  if (o.mode === 'off') return { skipped: '--warm-memory off' };
  if (o.mode === 'auto' && !o.reporting) return { skipped: 'this machine hands no free memory back to a hypervisor (no virtio-balloon free page reporting)' };
  if (o.mode === 'auto' && !o.hugePages) return { skipped: 'without --huge-pages CRIU fills memory with 4 KiB pages, which free page reporting leaves alone' };
  if (o.pageBytes <= 0) return { skipped: 'the image holds no page data' };
  const bytes = o.pageBytes + Math.ceil(o.pageBytes / 4);
  // Held at once with what CRIU restores, for a moment: both must fit, with 1 GiB to spare.
  const need = o.imageBytes + bytes + 2 ** 30;
  if (o.availableBytes !== null && o.availableBytes < need) return { skipped: `${formatBytes(o.availableBytes)} of memory available, ${formatBytes(need)} needed to warm ${formatBytes(bytes)} beside the restore` };
  return { bytes, threads: Math.max(1, Math.min(WARM_MEMORY_MAX_THREADS, o.cores - 1)) };
}

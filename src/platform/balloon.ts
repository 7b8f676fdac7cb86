/**
 * Whether this machine is a virtual machine whose memory balloon reports free pages to the hypervisor (virtio-balloon
 * free page reporting, VIRTIO_BALLOON_F_REPORTING: feature bit 5 of a virtio_balloon device). There memory left free
 * for a couple of seconds, in blocks of 2 MiB and up, is handed back to the host, and the next process to fault it in
 * pays the host's fault too: on the development VM fresh huge-page memory faulted in at 0.37 GB/s, memory just freed
 * at 10.7 GB/s, and CRIU restored a 2 GiB process in 2.24–3.85 s, 1.43–1.66 s right after the same amount had been
 * faulted in and freed (2026-12-07, BENCHMARKS.md). restore --huge-pages says so where this is on (restore.ts); the
 * lent GPU hosts have no balloon.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the kernel lists the devices its virtio_balloon driver has bound. */
export const BALLOON_DRIVER = '/sys/bus/virtio/drivers/virtio_balloon';
/** VIRTIO_BALLOON_F_REPORTING (include/uapi/linux/virtio_balloon.h). */
export const VIRTIO_BALLOON_F_REPORTING = 5;

/**
 * true: a balloon device negotiated free page reporting; false: none did (no balloon, or one without it). A device's
 * `features` file is one '0'/'1' character per feature bit, bit 0 first (drivers/virtio/virtio.c features_show).
 */
export function freePageReporting(driverDir = BALLOON_DRIVER): boolean {
  let entries: string[];
  try {
    entries = readdirSync(driverDir).filter((n) => /^virtio\d+$/.test(n));
  } catch {
    return false;
  }
  return entries.some((n) => {
    try {
      return readFileSync(join(driverDir, n, 'features'), 'utf8').trim()[VIRTIO_BALLOON_F_REPORTING] === '1';
    } catch {
      return false;
    }
  });
}

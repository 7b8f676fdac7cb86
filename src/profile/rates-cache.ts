/**
 * Rates reused: what the rate probes measured, kept per machine in coldstart's cache folder (`rates.json` in
 * $COLDSTART_CACHE, else $XDG_CACHE_HOME/coldstart, else ~/.cache/coldstart; written atomically), keyed by what
 * the rates depend on — the GPU (name and driver) or "host", the device and filesystem of the probed folder, the
 * kernel, the probe's shape — with the date they were measured. Reused while younger than RATES_MAX_AGE_DAYS,
 * never with --remeasure, never across keys. A file that does not parse is ignored (and replaced on the next save).
 */
import { release } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { readInputText } from '../core/files.js';
import { diskInfo } from '../platform/system.js';
import type { CudaProbeResult } from '../native.js';
import type { Rates } from './estimate.js';

export const RATES_MAX_AGE_DAYS = 7;
const SCHEMA = 'coldstart/rates-cache@1';
/** At most this many keys are kept (the newest): a machine sees few disks and GPUs. */
const MAX_ENTRIES = 32;

/** What the rates depend on; two runs with the same key may share them. */
export interface RatesKey {
  /** `GPU <name>, driver <version>` of the probed device, or `host` (no GPU: the loader reads into host memory). */
  machine: string;
  /** The probed folder, its block device, mount point and filesystem (the rates say where they were probed). */
  disk: string;
  kernel: string;
  probeBytes: number;
  warmSpanBytes: number;
  /** Without a GPU: host memory or discard, as the model's own load will. */
  sink: string;
  /** The Hub endpoint the network rate was measured to; null: no network rate. */
  network: string | null;
}

export interface RatesEntry {
  key: RatesKey;
  /** ISO date-time of the measurement. */
  measuredAt: string;
  rates: Rates;
  assumptions: string[];
  /** How long the probes took: said before the next measurement under this key starts. */
  seconds: number;
}

export function ratesCachePath(cacheDir: string): string {
  return join(cacheDir, 'rates.json');
}

/** The key of a probe about to run: the first probed GPU (or host), the probe folder's disk, this kernel. */
export function ratesKey(o: { cuda: CudaProbeResult | null; devices?: readonly number[]; dir: string; probeBytes: number; warmSpanBytes: number; sink: string; network: string | null }): RatesKey {
  const gpu = o.cuda?.available ? (o.cuda.devices.find((d) => d.index === (o.devices?.[0] ?? d.index)) ?? o.cuda.devices[0]) : undefined;
  const driver = o.cuda?.nvml.driverVersion ?? (o.cuda?.driverVersion !== undefined ? String(o.cuda.driverVersion) : '?');
  const d = diskInfo(o.dir);
  return {
    machine: gpu ? `GPU ${gpu.name}, driver ${driver}` : 'host',
    disk: `${o.dir} on ${d.device ?? '?'} at ${d.mount ?? '?'} (${d.fsType ?? '?'})`,
    kernel: release(),
    probeBytes: o.probeBytes,
    warmSpanBytes: o.warmSpanBytes,
    sink: o.cuda?.available ? 'gpu' : o.sink,
    network: o.network,
  };
}

const sameKey = (a: RatesKey, b: RatesKey): boolean => JSON.stringify(a) === JSON.stringify(b);

function readEntries(path: string): RatesEntry[] {
  try {
    const doc = JSON.parse(readInputText(path, 'rates cache')) as { schema?: unknown; entries?: unknown };
    if (doc.schema !== SCHEMA || !Array.isArray(doc.entries)) return [];
    return doc.entries.filter((e): e is RatesEntry => !!e && typeof e === 'object' && typeof (e as RatesEntry).measuredAt === 'string' && !!(e as RatesEntry).key && !!(e as RatesEntry).rates && Array.isArray((e as RatesEntry).assumptions));
  } catch {
    return [];
  }
}

/** The entry measured under `key`, of any age; null when none (or the file is unreadable). */
export function findRates(path: string, key: RatesKey): RatesEntry | null {
  return readEntries(path).find((x) => sameKey(x.key, key)) ?? null;
}

/** Whether an entry may be reused at `now`: measured less than RATES_MAX_AGE_DAYS before (never in the future). */
export function isFresh(e: RatesEntry, now: Date): boolean {
  const age = now.getTime() - Date.parse(e.measuredAt);
  return Number.isFinite(age) && age >= 0 && age < RATES_MAX_AGE_DAYS * 86_400_000;
}

/** Keeps `entry` (replacing the one of its key), newest first; written atomically. */
export function saveRates(path: string, entry: RatesEntry): void {
  const entries = [entry, ...readEntries(path).filter((x) => !sameKey(x.key, entry.key))].slice(0, MAX_ENTRIES);
  writeFileAtomic(path, `${JSON.stringify({ schema: SCHEMA, entries }, null, 2)}\n`);
}

/** How a reused measurement is said: its date and how to refresh it. */
export function reusedLine(e: RatesEntry): string {
  return `rates from ${e.measuredAt.slice(0, 10)} (this machine, disk and kernel; reused for ${RATES_MAX_AGE_DAYS} days); --remeasure to refresh`;
}

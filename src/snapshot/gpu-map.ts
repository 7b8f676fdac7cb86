/**
 * Which GPU each GPU of an image comes back on. The driver restores a process's GPU memory onto the GPUs it was
 * checkpointed on unless it is given pairs of UUIDs (CUcheckpointRestoreArgs.gpuPairs, driver 570+): "the GPU to
 * restore onto needs to have enough memory and be of the same chip type as the old GPU; if an array of pairs is
 * specified, it must contain every checkpointed GPU" (CUDA driver API, cuCheckpointProcessRestore). So an image taken
 * on one node restores on another node of the same model — whose GPUs have other UUIDs — or onto another GPU of the
 * same node, only with pairs.
 *
 * Snapshot records which GPUs each checkpointed process held memory on (`gpuUsed`, from NVML's compute processes);
 * restore plans here, before anything is touched: the same GPUs where they are present, else free ones of the same
 * model in index order, or the ones `--gpus` names; refused (nothing touched) where no such GPU exists or one has too
 * little free memory for what the server held on it.
 */
import { ColdstartError, invalidArg } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import type { GpuMemoryResult } from '../native.js';
import type { GpuUsed, Manifest } from './manifest.js';

export interface GpuDevice {
  index: number;
  name: string;
  uuid: string;
}

/** Where one GPU of the image comes back. */
export interface GpuMove {
  from: GpuDevice;
  to: GpuDevice;
}

export interface GpuPlan {
  moves: GpuMove[];
  /**
   * The pairs to hand the driver for each GPU process, as [old, new] UUIDs in 32 hex digits; null: none (every GPU
   * comes back on itself, the driver's default).
   */
  pairs: Map<number, Array<[string, string]>> | null;
  notes: string[];
}

/** An NVML GPU UUID ("GPU-" and 32 hex digits in 8-4-4-4-12 groups) as the driver's 16 bytes in hex; null: not one. */
export function uuidHex(uuid: string): string | null {
  const m = /^GPU-([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(uuid);
  return m ? m.slice(1).join('').toLowerCase() : null;
}

/**
 * The GPUs each of `gpuPids` held memory on, from one NVML reading (per-device compute processes); null when NVML
 * could not say for every one of them (no per-process lists, or a process listed on no device: another pid namespace).
 */
export function gpusUsed(mem: GpuMemoryResult | null, gpuPids: readonly number[]): GpuUsed[] | null {
  if (!gpuPids.length || !mem?.available) return null;
  const out: GpuUsed[] = [];
  for (const d of mem.devices) {
    if (!d.processes) return null;
    for (const p of d.processes) if (gpuPids.includes(p.pid)) out.push({ pid: p.pid, uuid: d.uuid, bytes: p.usedBytes });
  }
  return gpuPids.every((pid) => out.some((u) => u.pid === pid)) ? out : null;
}

/** The bytes of `used` together; null when NVML could not say for one of them, or for the set. */
export function usedBytesSum(used: readonly GpuUsed[] | null | undefined): number | null {
  return used && used.every((u) => u.bytes !== null) ? used.reduce((a, u) => a + u.bytes!, 0) : null;
}

const describe = (d: GpuDevice): string => `GPU ${d.index} (${d.name}, ${d.uuid})`;

/** The image's GPUs that its processes used, in first-use order: recorded ones, else every GPU of the snapshot machine. */
function imageGpus(m: Manifest): { gpus: GpuDevice[]; recorded: boolean } {
  const all = m.fingerprint.gpu?.devices ?? [];
  const used = m.gpuUsed ?? null;
  if (!used) return { gpus: all, recorded: false };
  const uuids = [...new Set(used.map((u) => u.uuid))];
  return { gpus: uuids.map((u) => all.find((d) => d.uuid === u) ?? { index: -1, name: 'unknown', uuid: u }), recorded: true };
}

/** A `--gpus` entry: an index of this machine's GPUs or one's UUID. */
function pickGpu(here: GpuDevice[], token: string): GpuDevice {
  const t = token.trim();
  const d = /^\d+$/.test(t) ? here.find((g) => g.index === Number(t)) : here.find((g) => g.uuid.toLowerCase() === t.toLowerCase());
  if (!d) throw invalidArg('--gpus', `indexes (${here.map((g) => g.index).join(', ') || 'none here'}) or UUIDs of this machine's GPUs`, token);
  return d;
}

/**
 * The restore's GPU plan for image `m` on this machine (`mem`: one NVML reading), `want` the `--gpus` list (null:
 * choose). Throws, before anything is touched: BAD_FLAG for a wrong `--gpus`, UNSUPPORTED for one of another model,
 * NO_GPU where no GPU of the model is left here, ENV where a target GPU has less free memory than the server held on it.
 */
export function planGpus(m: Manifest, mem: GpuMemoryResult | null, want: string[] | null, image: string): GpuPlan {
  const notes: string[] = [];
  if (!m.gpuPids.length) {
    if (want) throw invalidArg('--gpus', 'no --gpus: the image holds no GPU state', want.join(','));
    return { moves: [], pairs: null, notes };
  }
  const here: GpuDevice[] = mem?.available ? mem.devices.map((d) => ({ index: d.index, name: d.name, uuid: d.uuid })) : [];
  const { gpus, recorded } = imageGpus(m);
  if (!gpus.length) return { moves: [], pairs: null, notes: ['which GPUs the image used is not recorded: restored onto the same ones'] };
  const targets: GpuDevice[] = [];
  if (want) {
    if (want.length !== gpus.length) {
      throw invalidArg('--gpus', `${gpus.length} GPU${gpus.length > 1 ? 's' : ''}, one for each the image used (${gpus.map(describe).join('; ')})${recorded ? '' : ' — which ones its server used was not recorded, so every GPU of the snapshot machine counts'}`, want.join(','));
    }
    for (const t of want) {
      const d = pickGpu(here, t);
      if (targets.some((x) => x.uuid === d.uuid)) throw invalidArg('--gpus', 'each GPU once', want.join(','));
      targets.push(d);
    }
  } else {
    // The same GPU where it is here; the others onto GPUs of the same model that no image GPU keeps, in index order.
    const stays = new Set(gpus.filter((g) => here.some((h) => h.uuid === g.uuid)).map((g) => g.uuid));
    for (const g of gpus) {
      const d = stays.has(g.uuid) ? here.find((h) => h.uuid === g.uuid) : here.find((h) => h.name === g.name && !stays.has(h.uuid) && !targets.some((x) => x.uuid === h.uuid));
      if (!d) {
        throw new ColdstartError('NO_GPU', `${image}: the image's server used ${describe(g)}; this machine has no ${g.name} left to restore it onto (${here.length ? here.map(describe).join('; ') : 'no GPU'})`, {
          hint: `The driver restores GPU memory only onto a GPU of the same model${recorded ? '' : '; this image does not record which GPUs its server used, so every GPU of the snapshot machine needs one here — a snapshot taken with this coldstart records them'}.`,
        });
      }
      targets.push(d);
    }
  }
  const moves = gpus.map((from, i) => ({ from, to: targets[i]! }));
  for (const { from, to } of moves) {
    if (to.name !== from.name) {
      throw new ColdstartError('UNSUPPORTED', `${image}: cannot restore ${describe(from)} onto ${describe(to)}: another model`, { hint: 'The driver restores GPU memory only onto a GPU of the same model; choose one with --gpus.' });
    }
    const need = (m.gpuUsed ?? []).filter((u) => u.uuid === from.uuid).reduce<number | null>((a, u) => (a === null || u.bytes === null ? null : a + u.bytes), 0);
    const free = mem?.devices.find((d) => d.uuid === to.uuid)?.freeBytes ?? null;
    if (need !== null && need > 0 && free !== null && free < need) {
      throw new ColdstartError('ENV', `${image}: ${describe(to)} has ${formatBytes(free)} free; the server held ${formatBytes(need)} on ${from.uuid === to.uuid ? 'it' : describe(from)}`, {
        hint: `Free that GPU (stop or park what runs there) or restore onto another with --gpus; nothing was touched.`,
        details: { gpu: to, freeBytes: free, needBytes: need },
      });
    }
  }
  const moved = moves.some((mv) => mv.from.uuid !== mv.to.uuid);
  if (!moved && !want) return { moves, pairs: null, notes };
  if (!recorded) notes.push('which GPUs the server used is not recorded in this image: every GPU of the snapshot machine was paired');
  const pairOf = (mv: GpuMove): [string, string] => {
    const a = uuidHex(mv.from.uuid);
    const b = uuidHex(mv.to.uuid);
    if (!a || !b) throw new ColdstartError('UNSUPPORTED', `${image}: cannot restore ${describe(mv.from)} onto ${describe(mv.to)}: not a whole-GPU UUID (MIG instances are not remapped)`);
    return [a, b];
  };
  const pairs = new Map<number, Array<[string, string]>>();
  for (const pid of m.gpuPids) {
    const mine = recorded ? moves.filter((mv) => m.gpuUsed!.some((u) => u.pid === pid && u.uuid === mv.from.uuid)) : moves;
    pairs.set(pid, mine.map(pairOf));
  }
  return { moves, pairs, notes };
}

/** "GPU 0 → GPU 1 (NVIDIA H100 80GB HBM3)" for each GPU that moved; empty when none did. */
export function movesText(moves: GpuMove[]): string {
  return moves
    .filter((mv) => mv.from.uuid !== mv.to.uuid)
    .map((mv) => `GPU ${mv.from.index} of the snapshot machine → GPU ${mv.to.index} here (${mv.to.name}, ${mv.to.uuid})`)
    .join('; ');
}

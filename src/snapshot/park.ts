/**
 * `park` / `unpark`: the GPU-only half of a snapshot, in place. park frees the GPU of a running CUDA process (lock,
 * then checkpoint its GPU memory into host memory; the process stays); unpark brings it back (restore, unlock).
 */
import { ColdstartError } from '../core/errors.js';
import { formatBytes, formatDuration } from '../core/format.js';
import { newReport } from '../core/report.js';
import type { GpuMemoryResult } from '../native.js';
import { hugePagesBack, hugePagesDetail, hugePagesOn, type HugePagesWindow } from '../platform/thp.js';
import { stopwatch, type SnapshotEngines } from './engines.js';
import { checkpointFailure, noSuchProcess } from './native.js';
import type { RecordedRequest } from '../server/api.js';
import { phase, type Reported } from './report.js';
import { sendHooks, type SentHook } from './snapshot.js';
import { h2dFloor, partFloor, unparkFloor, unparkFloorLine, type UnparkFloor } from './floor.js';

export interface ParkOptions {
  which: 'park' | 'unpark';
  pid: number;
  /** park: how long locking may wait for in-flight GPU work. */
  lockTimeoutSeconds: number;
  /**
   * park: transparent huge pages `always` (system-wide) while the driver moves GPU memory into the process's host
   * memory, then the mode found put back. The parked memory then sits in 2 MiB pages, which unpark also reads faster
   * (H100, 22 GB: park 8.08 → 5.76 s, unpark 3.21 → 2.42 s).
   */
  hugePages?: boolean;
  /**
   * park: sent before the GPU lock (e.g. vLLM's /sleep: what the server releases itself, the driver does not move);
   * unpark: sent in order after the unlock (its /wake_up, then e.g. a reload of the weights). An error status or no
   * answer fails the command (exit 3).
   */
  hooks?: RecordedRequest[];
  /**
   * unpark: measure this machine's floor for it afterwards (floor.ts): the GPU memory the driver brought back (NVML,
   * read right after the unlock) at pinned H2D on those GPUs.
   */
  floor?: boolean;
  /** How long each hook request may take. */
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

const HOOK_FLAG = { park: '--before-park', unpark: '--after-unpark' } as const;

function usedBytes(m: GpuMemoryResult | null): number | null {
  return m?.available ? m.devices.reduce((a, d) => a + d.usedBytes, 0) : null;
}

export async function parkOrUnpark(o: ParkOptions, engines: SnapshotEngines): Promise<Reported> {
  const { host, native, clock } = engines;
  const { pid, which } = o;
  // Whether the process exists (2) before what this machine lacks (3).
  if (!host.pidAlive(pid)) throw noSuchProcess(pid);
  const missing = native.unavailable();
  if (missing) throw new ColdstartError('NATIVE_UNAVAILABLE', `not available: ${missing.reason}`, { hint: `To fix: ${missing.fixes.join('; or ')}.` });
  const fail = (e: unknown) => checkpointFailure(e, pid, host.pidAlive(pid));
  const state = await native.checkpoint(pid, 'state').catch((e: unknown) => {
    throw fail(e);
  });
  const want = which === 'park' ? 'running' : 'checkpointed';
  if (state.state !== want) {
    throw new ColdstartError('BAD_INPUT', `pid ${pid}: its CUDA state is ${state.state}, ${which} needs ${want}`, {
      hint: which === 'park' ? 'It is already parked: use `coldstart unpark`.' : 'It is not parked: use `coldstart park` first.',
      details: { state: state.state },
    });
  }
  const before = await native.gpuMemory();
  const times: Record<string, number> = {};
  const total = stopwatch(clock);
  let thp: HugePagesWindow | null = null;
  const hooks = o.hooks ?? [];
  let backOnGpu: GpuMemoryResult | null = null;
  const sent: SentHook[] = [];
  const send = async (name: string) => {
    const r = await sendHooks(hooks, HOOK_FLAG[which], o.timeoutSeconds ?? 300, o.signal ?? new AbortController().signal);
    sent.push(...r.sent);
    if (r.seconds !== null) times[name] = r.seconds;
  };
  if (which === 'park') await send('before-park');
  try {
    if (which === 'park') {
      times['gpu-lock'] = (await native.checkpoint(pid, 'lock', { timeoutMs: Math.round(o.lockTimeoutSeconds * 1000) })).seconds;
      thp = o.hugePages ? hugePagesOn(host.thp, 'parked') : null;
      try {
        times['gpu-checkpoint'] = (await native.checkpoint(pid, 'checkpoint')).seconds;
      } catch (e) {
        await native.checkpoint(pid, 'unlock').catch(() => undefined);
        throw e;
      } finally {
        if (thp) hugePagesBack(host.thp, thp);
      }
    } else {
      times['gpu-restore'] = (await native.checkpoint(pid, 'restore')).seconds;
      times['gpu-unlock'] = (await native.checkpoint(pid, 'unlock')).seconds;
      // What the driver brought back, before a hook makes the server take more (a few ms of NVML; --floor only).
      if (o.floor) backOnGpu = await native.gpuMemory();
    }
  } catch (e) {
    const err = fail(e);
    if (!hooks.length || which !== 'park' || !(err instanceof ColdstartError)) throw err;
    const asleep = `The server was sent ${hooks.map((h) => `${h.method} ${h.url}`).join(', ')} (--before-park) first: send it its wake-up request to serve again.`;
    throw new ColdstartError(err.code, err.message, { hint: err.hint ? `${err.hint} ${asleep}` : asleep, details: err.details, cause: err });
  }
  if (which === 'unpark') {
    try {
      await send('after-unpark');
    } catch (e) {
      if (!(e instanceof ColdstartError)) throw e;
      throw new ColdstartError(e.code, `pid ${pid} is back on the GPU, but ${e.message}`, { hint: e.hint, details: e.details, cause: e });
    }
  }
  const seconds = total();
  const after = await native.gpuMemory();
  const ub = usedBytes(before);
  const ua = usedBytes(after);
  const driverSeconds = (times['gpu-restore'] ?? 0) + (times['gpu-unlock'] ?? 0);
  let floor: UnparkFloor | null = null;
  if (which === 'unpark' && o.floor) {
    // The process's own GPU memory as NVML lists it right after the unlock, on the GPUs that list it.
    const on = backOnGpu?.available ? backOnGpu.devices.filter((d) => (d.processes ?? []).some((p) => p.pid === pid)) : [];
    const mine = on.map((d) => d.processes!.find((p) => p.pid === pid)!.usedBytes);
    const bytes = on.length && mine.every((b) => b !== null) ? mine.reduce((a: number, b) => a + b!, 0) : null;
    floor = unparkFloor(await h2dFloor(native, bytes, on.length ? on.map((d) => d.index) : null, `GPU memory NVML lists for pid ${pid}`), driverSeconds);
  }
  const report = newReport(which);
  report.target = { pid };
  report.phases = Object.entries(times).map(([k, v]) => phase(k, v));
  if (floor) report.phases.find((p) => p.name === 'gpu-restore')!.floor = partFloor(floor.gpu);
  report.total = { seconds };
  report.details = {
    pid,
    stateBefore: state.state,
    stateAfter: which === 'park' ? 'checkpointed' : 'running',
    gpuMemoryUsedBefore: ub,
    gpuMemoryUsedAfter: ua,
    gpuMemory: ub === null ? `not measured: ${before?.reason ?? 'NVML unavailable'}` : { before: before!.devices, after: after?.devices ?? null },
    ...(thp ? { hugePages: hugePagesDetail(thp) } : {}),
    hooks: sent.map((h) => ({ flag: HOOK_FLAG[which], ...h })),
    ...(which === 'unpark' ? { floor: floor ?? { notMeasured: 'not asked: --floor measures it after the unpark' } } : {}),
  };
  if (thp?.note) report.warnings.push(thp.note);
  return {
    report,
    human: () =>
      [
        `${which === 'park' ? 'parked' : 'unparked'} pid ${pid} in ${formatDuration(seconds)} (${Object.entries(times).map(([k, v]) => `${k} ${formatDuration(v)}`).join(', ')})`,
        ub === null ? `GPU memory: not measured (${before?.reason ?? 'NVML unavailable'})` : `GPU memory in use: ${formatBytes(ub)} → ${ua === null ? 'not measured' : formatBytes(ua)}`,
        ...(floor ? [unparkFloorLine(floor, driverSeconds)] : []),
      ].join('\n'),
  };
}

/**
 * Framework mode: the phases of the user's stack (imports, cuda-init, gpu-load, warmup) from its own process,
 * each with the floor for the same step beside it (the native CUDA probe, the native loader on the same files in
 * the same page-cache state). The floor runs after the stack has exited and is never added to the total.
 */
import { dirname } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { skippedPhase, type PhaseResult } from '../core/phases.js';
import { Stopwatch } from '../core/clock.js';
import { formatBytes, formatDuration } from '../core/format.js';
import type { CudaProbeResult } from '../native.js';
import { hostRead } from '../load/host-read.js';
import type { GpuLoadResult } from './engines.js';
import { timeStack, type Framework, type StackTimes } from './framework.js';
import { cudaInitPhase, type Outside } from './phases.js';
import type { CacheMode } from './options.js';
import type { ModelPlan, ProfileDeps } from './plan.js';
import type { Target } from './target.js';

/** Puts the weights in the page-cache state asked for, outside any timed phase. */
async function prepareCache(deps: ProfileDeps, cache: CacheMode, files: readonly string[]): Promise<string | null> {
  if (cache === 'warm') {
    hostRead(files, 16 << 20, deps.signal);
    return null;
  }
  if (cache !== 'cold') return null;
  const n = deps.engines.native();
  if (!n.ok) return `the page cache could not be dropped (native addon unavailable: ${n.reason}); the stack read the files as the cache held them`;
  const after = await n.addon.pageCache({ paths: [...files], action: 'evict' });
  const note = after.find((e) => e.note)?.note;
  return note ?? null;
}

function ok(name: string, seconds: number, note: string, extra: Partial<PhaseResult> = {}): PhaseResult {
  return { name, status: 'ok', seconds, note, steps: [], metrics: {}, ...extra };
}

export interface StackOutcome {
  rows: PhaseResult[];
  times: StackTimes;
  /** Seconds of the stack's cold start no phase explains. */
  unexplainedSeconds: number;
  /** The stack's measured wall clock (spawn → end of the first forward), seconds. */
  wallSeconds: number | null;
  /** The floors measured after the stack (null with --no-floor): the native CUDA probe and the native loader. */
  cuda: CudaProbeResult | null;
  load: GpuLoadResult | null;
  outside: Outside;
}

export async function stackPhases(plan: ModelPlan & { framework: Framework }, deps: ProfileDeps, t: Target): Promise<StackOutcome> {
  const fw = plan.framework;
  const cache = plan.options.cache;
  if (t.files.length === 0) throw new ColdstartError('NOT_FOUND', `--framework ${fw}: no weight files to load`);
  // 1. The stack first, on a GPU this process has not touched and from a page cache in the state asked for:
  //    a CUDA context held by coldstart keeps the driver initialised and made the stack's own CUDA init look
  //    half as long (H200, 2026-11-28), and a load just before it changes what the disk and cache hold.
  const cacheNote = await prepareCache(deps, cache, t.files);
  // The stack's own events as they happen: the progress line says which step it is in.
  const bar = deps.events?.progress?.(`your stack (${fw})`);
  bar?.say('starting python…');
  const said: Record<string, string> = { start: 'importing…', imports: 'CUDA init…', cuda: `loading the weights${t.bytes ? ` (${formatBytes(t.bytes)})` : ''}…`, load: 'first forward…', first: 'timing a steady forward…' };
  let times: StackTimes;
  try {
    times = await timeStack(deps.engines, fw, t.dir ?? dirname(t.files[0]!), t.files, cache, deps.env, deps.signal, (e) => {
      const next = said[String(e.event)];
      if (next) bar?.say(next);
    });
  } finally {
    bar?.end();
  }
  // 2. The floors, after the stack has exited (never added to the total): the native CUDA probe (its row is the
  //    stack's), then the native loader on the same files in the same page-cache state (it evicts or warms them
  //    itself). --no-floor: none.
  const floors = plan.options.floor;
  const cuda = floors ? (await cudaInitPhase(plan, deps)).facts.cuda : null;
  let fl: GpuLoadResult | null = null;
  const outside: Outside = {};
  if (floors && t.format === 'safetensors') {
    const sw = new Stopwatch();
    const floorBar = deps.events?.progress?.('floor: the native loader on the same files');
    try {
      fl = await deps.engines.gpuLoad.runGpuLoad({ files: [...t.files], devices: plan.options.devices ? [...plan.options.devices] : undefined, cache, limits: true, ...(plan.options.direct !== undefined ? { direct: plan.options.direct } : {}), signal: deps.signal, onProgress: (d, n) => floorBar?.update(d, n) });
    } finally {
      floorBar?.end();
    }
    outside.floorLoad = sw.elapsed();
  }
  const rows: PhaseResult[] = [];
  rows.push(
    ok('imports', times.importSeconds, `python process start → imports done (${times.python})`, {
      steps: [{ name: 'interpreter start', seconds: times.interpreterSeconds, note: 'spawn → first line of the script' }, ...times.importSteps],
      floor: null,
    }),
  );
  const cudaFloor = cuda?.available ? cuda.timings.init + cuda.timings.enumerate + cuda.timings.context : null;
  if (times.cudaInitSeconds === null) rows.push(skippedPhase('cuda-init', times.deviceReason ?? 'no CUDA device'));
  else rows.push(ok('cuda-init', times.cudaInitSeconds, times.cudaCall ?? 'the stack\'s CUDA init', { floor: cudaFloor !== null ? { seconds: cudaFloor, source: 'native cuInit + primary context' } : null }));
  const floorLoad = fl ? { seconds: fl.seconds, source: fl.mode === 'gpu' ? `native loader, ${cache} page cache` : `native loader into host memory (no GPU), ${cache} page cache` } : null;
  rows.push(
    ok('gpu-load', times.loadSeconds, `${times.loadCall}: ${formatBytes(times.bytes)} on ${times.device}, ${cache} page cache${cacheNote ? ` (${cacheNote})` : ''}`, {
      floor: floorLoad,
      metrics: { bytes: times.bytes, device: times.device, ...(fl ? { floorEfficiency: fl.efficiency } : {}) },
    }),
  );
  // compile: warmup --compile (#17) adds its row here when the stack compiles; no row otherwise.
  if (times.firstForwardSeconds === null) rows.push(skippedPhase('warmup', times.forwardSkipped ?? 'no forward pass'));
  else
    rows.push(
      ok('warmup', times.firstForwardSeconds, `first generate (${times.device})`, {
        metrics: { firstForwardSeconds: times.firstForwardSeconds, steadyForwardSeconds: times.steadyForwardSeconds },
        steps: [{ name: 'first generate', seconds: times.firstForwardSeconds, note: times.steadyForwardSeconds !== null ? `a steady generate takes ${formatDuration(times.steadyForwardSeconds)} (not part of the cold start)` : undefined }],
      }),
    );
  return { rows, times, unexplainedSeconds: times.unexplainedSeconds, wallSeconds: times.coldStartSeconds + times.unexplainedSeconds, cuda, load: fl, outside };
}

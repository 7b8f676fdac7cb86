/** What one `coldstart profile` run shares between its phase modules: flags, target, engines and measured facts. */
import type { Context, ReportFlags } from '../cli/context.js';
import type { CudaProbeResult } from '../native.js';
import type { Engines, GpuLoadResult } from './engines.js';
import type { Rates } from './estimate.js';
import type { Target } from './target.js';

export interface ProfileFlags extends ReportFlags {
  runs: string;
  warmup: string;
  only?: string;
  synthetic?: boolean;
  format?: string;
  dtype?: string;
  estimate?: boolean;
  image?: string;
  containerRuntime?: string;
  containerArg?: string[];
  since?: string;
  devices?: string;
  verify?: boolean;
  cache: string;
  download: boolean;
  /** false with --no-floor (stack and wrap modes): no floor measurements after the stack. */
  floor: boolean;
  revision?: string;
  framework?: string;
  url?: string;
  readyUrl?: string;
  readyLog?: string;
  readyTimeout: string;
  completionUrl?: string;
  completion: boolean;
  stopTimeout: string;
  stage?: string[];
  gpuPrice?: string;
  warmInstances?: string;
  probeBytes?: string;
}

export interface State {
  ctx: Context;
  flags: ProfileFlags;
  engines: Engines;
  target: Target;
  only: Set<string> | null;
  cache: 'cold' | 'warm' | 'as-is';
  devices?: number[];
  cuda: CudaProbeResult | null;
  cudaReason: string | null;
  rates: Rates | null;
  assumptions: string[];
  /** The native loader's load in GPU mode (the floor of gpu-load). */
  gpuLoad: GpuLoadResult | null;
  /** The native loader's load in either mode (host mode without a GPU). */
  floorLoad: GpuLoadResult | null;
  gpuLoadWarm: GpuLoadResult | null;
  downloaded: { bytes: number; fromCache: boolean; snapshotDir: string } | null;
  /** Time spent inside the measured sequence that is not part of a cold start (limits, cache eviction), seconds. */
  outside: Record<string, number>;
}

/**
 * What `coldstart profile` is asked to do, as typed values: the command (src/commands/profile.ts) turns its flags
 * into one ProfileOptions at the start; nothing under src/profile sees a flag string.
 */
import type { PhaseName } from '../core/phases.js';
import type { Progress } from '../core/output.js';
import type { Dtype } from '../formats/dtypes.js';
import type { SyntheticFormat } from '../models/synthetic.js';
import type { CacheMode } from '../load/gpu-load.js';
import type { RuntimeName } from '../platform/container.js';
import type { WrapOptions } from '../server/wrap.js';
import type { Framework } from './framework.js';

export type { CacheMode } from '../load/gpu-load.js';

/** The container phase: time a start of an image, or take t0 from when the start was scheduled. */
export interface ContainerOptions {
  image?: string;
  runtime?: RuntimeName;
  /** Extra arguments for `podman|docker run`. */
  runArgs?: readonly string[];
  /** When the start was scheduled: the text as given (shown) and its Unix epoch seconds. */
  since?: { text: string; epochSeconds: number };
}

/** The server a wrap-mode profile starts, waits for and stops (src/server/wrap.ts takes these as they are). */
export type WrapServer = Pick<WrapOptions, 'command' | 'readyUrl' | 'readyLog' | 'completionUrl' | 'stageRules'> & {
  readyTimeoutSeconds: number;
  stopTimeoutSeconds: number;
};

export interface ProfileOptions {
  /** An alias, a Hub repo id, a folder or a weights file (default: the demo); in wrap mode the server's weights. */
  model?: string;
  /** Measured runs (≥ 1) and unmeasured runs before them. */
  runs: number;
  warmup: number;
  /** The phases to measure (--only); null: every phase. */
  only: ReadonlySet<PhaseName> | null;
  /** Build a shape-accurate synthetic checkpoint for an alias, in this format and dtype (default: the model's). */
  synthetic: boolean;
  format: SyntheticFormat;
  dtype?: Dtype;
  /** Predict every phase from measured rates; move no weight bytes. */
  estimate: boolean;
  container: ContainerOptions;
  /** GPU indexes for the loader and the probe (after CUDA_VISIBLE_DEVICES); all when absent. */
  devices?: readonly number[];
  /** gpu-load: tensor-parallel degree (each of the devices receives only its slices; each byte read once). */
  tp?: number;
  /** gpu-load: copy a sample of every tensor back and compare it with the file. */
  verify: boolean;
  cache: CacheMode;
  /** gpu-load reads: true O_DIRECT (--direct), false through the page cache (--buffered); absent: by residency. */
  direct?: boolean;
  /** false: predict the download from file sizes and a measured rate instead of downloading. */
  download: boolean;
  /** false (--no-floor, beside a stack or a wrapped server): the stack's numbers only. */
  floor: boolean;
  revision?: string;
  /** Profile the user's stack in its own Python process. */
  framework?: Framework;
  /** A running server to warm up (the warmup phase of the floor profile). */
  url?: string;
  /** The warm-pool trade-off: USD per GPU hour (null: not priced) and how many warm instances. */
  gpuPricePerHour: number | null;
  warmInstances: number;
  /** Size of the rate-probe file; default: the model's size within 64 MiB–1 GiB. */
  probeBytes?: number;
  /** Measure the rates again instead of reusing this machine's from the last 7 days (rates-cache.ts). */
  remeasure?: boolean;
  /** Wrap mode (`profile [MODEL] -- CMD`): the server to profile. */
  wrap?: WrapServer;
}

/**
 * How a profile run tells the command what happens while it runs; the command shows it through Output (the
 * profile never prints). Every member is optional: a library caller passes none.
 */
export interface ProfileEvents {
  /** A long step outside the phases (the synthetic checkpoint) with bytes done of a total. */
  progress?: (label: string) => Progress;
  /** A line worth telling the user (not part of the report). */
  note?: (text: string) => void;
  /** One line per run when there are several: its total, or why it is incomplete. */
  run?: (text: string) => void;
  /** A wrapped server's log line, timed from its start (shown with --debug). */
  serverLine?: (seconds: number, text: string) => void;
}

/**
 * Log rules as data: each rule names the log line it matches, the stage it marks, the coldstart phase the
 * stage counts toward, the engine versions whose wording it covers, and where that wording comes from (the
 * engine's source or a public log in fixtures/server-logs). The rule engine in ../wrap-stages.ts reads them.
 */
export type EngineName = 'vllm' | 'tgi' | 'sglang' | 'llama.cpp';
/** The DESIGN.md phases a server stage can count toward (container/imports/cuda-init are not in logs). */
export type WrapPhase = 'download' | 'gpu-load' | 'compile' | 'warmup';
export const WRAP_PHASES: readonly WrapPhase[] = ['download', 'gpu-load', 'compile', 'warmup'];

export interface LogRule {
  /** Stable id, e.g. `vllm.download`. */
  id: string;
  engine: EngineName | 'custom';
  /** Stage name; `{1}` is replaced by `variantGroup` (e.g. SGLang's "target decode"). */
  stage: string;
  phase: WrapPhase;
  /**
   * begin: opens the stage. end: closes it (its start is the engine's printed duration when there is one,
   * else the open begin, else — with `fromPrevious` — the previous matched line, else it is ignored).
   * mark: matches nothing but bounds stages that have no end line.
   */
  kind: 'begin' | 'end' | 'mark';
  re: RegExp;
  /** Capture group with the duration the engine printed, in seconds. */
  secondsGroup?: number;
  /** Capture group with a variant name that is put into `stage`. */
  variantGroup?: number;
  /** An end line with no begin and no printed duration starts at the previous matched line. */
  fromPrevious?: boolean;
  /** Engine versions whose wording this matches (descriptive: the wording, not a version check). */
  versions: string;
  /** Where the wording comes from: engine source file and/or a fixture log. */
  cite: string;
}

export interface EngineSpec {
  engine: EngineName;
  /** A line that identifies the engine (checked in order: tgi, llama.cpp, sglang, vllm). */
  signature: RegExp;
  /** Version as printed, when the engine prints it. */
  version?: RegExp;
  rules: readonly LogRule[];
}

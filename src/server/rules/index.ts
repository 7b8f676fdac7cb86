import type { EngineName, EngineSpec, LogRule, WrapPhase } from './types.js';
import { VLLM } from './vllm.js';
import { SGLANG } from './sglang.js';
import { TGI } from './tgi.js';
import { LLAMACPP } from './llamacpp.js';
import { ColdstartError } from '../../core/errors.js';

export type { EngineName, EngineSpec, LogRule, WrapPhase } from './types.js';
export { WRAP_PHASES } from './types.js';

/** Checked in this order: the first line that matches an engine's signature decides the engine. */
export const ENGINES: readonly EngineSpec[] = [TGI, LLAMACPP, SGLANG, VLLM];
export const ALL_RULES: readonly LogRule[] = ENGINES.flatMap((e) => e.rules);

const PHASES = new Set(['download', 'gpu-load', 'compile', 'warmup']);

/**
 * `--stage 'name=REGEX'` or `--stage 'name:phase=REGEX'`: a line matching REGEX ends stage `name`, which starts
 * at the previous matched line (the server's start for the first one); a capture group holding a number is the duration the server printed (seconds).
 */
export function parseStageFlag(spec: string): LogRule {
  const m = /^([^=:]+?)(?::([a-z-]+))?=(.+)$/s.exec(spec);
  if (!m) throw new ColdstartError('BAD_FLAG', `--stage: expected 'name=REGEX' or 'name:phase=REGEX', got '${spec}'`, { hint: "Example: --stage 'model load:gpu-load=Loaded model in ([\\d.]+)s'" });
  const [, name, phase = 'warmup', src] = m;
  if (!PHASES.has(phase)) throw new ColdstartError('BAD_FLAG', `--stage ${spec}: unknown phase '${phase}'`, { hint: 'Use one of download, gpu-load, compile, warmup.' });
  let re: RegExp;
  try {
    re = new RegExp(src!);
  } catch (e) {
    throw new ColdstartError('BAD_FLAG', `--stage ${spec}: not a regular expression: ${(e as Error).message}`, { hint: 'Quote the regex for your shell; escape ( ) [ ] when you mean them literally.' });
  }
  const groups = new RegExp(`${src}|`).exec('')!.length - 1;
  return { id: `custom.${name!.trim()}`, engine: 'custom', stage: name!.trim(), phase: phase as WrapPhase, kind: 'end', re, fromPrevious: true, ...(groups > 0 ? { secondsGroup: 1 } : {}), versions: 'any', cite: `--stage ${spec}` };
}

export function engineSpec(name: EngineName): EngineSpec {
  return ENGINES.find((e) => e.engine === name)!;
}

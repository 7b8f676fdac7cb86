/**
 * The plan of one `coldstart profile` run, built once before anything is measured and never changed: the mode
 * (floor | stack | estimate | wrap), the options as typed values, the target as resolved from the model argument
 * and what is known about it before any step runs. Each step returns what it measured (a value); the run folds
 * those values into the report at the end (run.ts, report.ts).
 */
import type { PhaseName } from '../core/phases.js';
import type { Engines } from './engines.js';
import type { Framework } from './framework.js';
import type { ProfileEvents, ProfileOptions, WrapServer } from './options.js';
import { resolveTarget, type Target } from './target.js';

export type ProfileMode = 'floor' | 'stack' | 'estimate' | 'wrap';

/** A profile of a model: coldstart's own floor, the user's stack (--framework), or an estimate (--estimate). */
export interface ModelPlan {
  readonly mode: 'floor' | 'stack' | 'estimate';
  readonly options: Readonly<ProfileOptions>;
  /** The model as resolved before anything runs; a synthetic or Hub model gets its files from a step. */
  readonly target: Target;
  /** The stack profiled in stack mode, else null. */
  readonly framework: Framework | null;
  /** What is assumed before anything runs (weights the resolver left out, and why). */
  readonly assumptions: readonly string[];
}

/** A wrapped server (`profile [MODEL] -- CMD`): its phases from its logs, the floor beside its weights stage. */
export interface WrapPlan {
  readonly mode: 'wrap';
  readonly options: Readonly<ProfileOptions>;
  readonly server: WrapServer;
}

export type ProfilePlan = ModelPlan | WrapPlan;

/** What a profile run uses besides its plan: the engines (tests swap them), where it runs, and who listens. */
export interface ProfileDeps {
  engines: Engines;
  env: Record<string, string | undefined>;
  cwd: string;
  signal?: AbortSignal;
  events?: ProfileEvents;
}

/** Builds the plan: the mode from the options, the target from the model argument (refused names exit 2 here). */
export function planProfile(options: ProfileOptions, cwd: string): ProfilePlan {
  if (options.wrap) return { mode: 'wrap', options, server: options.wrap };
  const target = resolveTarget(options.model, cwd, { synthetic: options.synthetic, format: options.format, dtype: options.dtype });
  const framework = options.framework && !options.estimate ? options.framework : null;
  return {
    mode: options.estimate ? 'estimate' : framework ? 'stack' : 'floor',
    options,
    target,
    framework,
    assumptions: target.skipped ? [`weights: ${target.skipped}`] : [],
  };
}

/** Whether this run measures a phase (--only). */
export function selected(plan: ProfilePlan, name: PhaseName): boolean {
  return !plan.options.only || plan.options.only.has(name);
}

/** Whether the rates are needed: they predict downloads and loads, so only a run with either needs them. */
export function needsRates(plan: ProfilePlan): boolean {
  return selected(plan, 'gpu-load') || selected(plan, 'download');
}

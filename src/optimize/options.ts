/**
 * What `coldstart optimize` is asked to do, as typed values: src/commands/optimize.ts turns its flags into one
 * OptimizeOptions before anything runs; nothing under src/optimize sees a flag string.
 */
import type { Dtype } from '../formats/dtypes.js';
import type { WrapServer } from '../profile/options.js';

export interface OptimizeOptions {
  /** The server, as wrap mode takes it (command, ready URL/log, first request, stage rules, deadlines). */
  server: WrapServer;
  /** Where the compile/JIT caches, their fingerprint and the recipe go (absolute). */
  persistDir: string;
  /** The weights the server loads (MODEL before --); else found in its command, when it names them. */
  model?: string;
  revision?: string;
  /** Drop the weights from the page cache before each start (cold, the default) or leave it as it is. */
  cache: 'cold' | 'as-is';
  /** Start prefetch beside the optimized start when the weights are not resident (default true). */
  prefetch: boolean;
  /** The dtype the first answers are judged in (default: the weights' config.json, else bf16, said so). */
  dtype?: Dtype;
  /** Also make a snapshot image of the optimized server and time a restore (CRIU). */
  snapshot: boolean;
  /** The coldstart command the recipe calls (`coldstart`, or `npx coldstart`). */
  coldstartCommand: string;
}

/** What an optimize run tells while it runs (the command shows it through Output; the capability never prints). */
export interface OptimizeEvents {
  /** One line per step ("baseline: starting the server with empty compile caches"). */
  step?: (text: string) => void;
  /** A server log line, timed from its start (--debug). */
  serverLine?: (seconds: number, text: string) => void;
}

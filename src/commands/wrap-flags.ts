/**
 * The flags of a command that starts a server (`profile -- CMD`, `optimize -- CMD`): declared once, parsed once into
 * the WrapServer that server/wrap.ts takes, every value checked before the server starts.
 */
import type { Command } from 'commander';
import { collect } from './context.js';
import { durationFlag, httpUrlFlag, regexFlag } from '../core/flags.js';
import { parseStageFlag } from '../server/rules/index.js';
import type { WrapServer } from '../profile/options.js';

export interface WrapFlags {
  readyUrl?: string; readyLog?: string; readyTimeout: string; completionUrl?: string; completion: boolean; stopTimeout: string; stage?: string[];
}

/** Splits `coldstart profile [model] -- cmd …`: what commander saw as operands, cut at the literal `--`. */
export function splitWrap(argv: readonly string[], operands: readonly string[]): { model?: string; command: string[] } {
  const i = argv.indexOf('--');
  if (i < 0) return { model: operands[0], command: [] };
  const command = argv.slice(i + 1);
  const before = operands.slice(0, Math.max(0, operands.length - command.length));
  return { model: before[0], command };
}

/** The server's flags; `scope` starts each description ('wrap mode: ' where the command has other modes). */
export function addWrapOptions(cmd: Command, scope = ''): Command {
  return cmd
    .option('--ready-url <url>', `${scope}the server is ready when this URL answers 2xx`)
    .option('--ready-log <regex>', `${scope}the server is ready when a log line matches`)
    .option('--ready-timeout <duration>', `${scope}how long to wait for ready, each start`, '600')
    .option('--completion-url <url>', `${scope}endpoint for the first request (default: /v1/completions, else /generate)`)
    .option('--no-completion', `${scope}send no first request`)
    .option('--stop-timeout <duration>', `${scope}time between SIGTERM and SIGKILL when stopping the server`, '10')
    .option('--stage <name=regex>', `${scope}a log line that ends a stage, 'name[:phase]=REGEX' (a (number) group is its printed duration; repeatable)`, collect);
}

/** The server of `-- CMD`, its flags checked before anything starts (a bad one exits 2). */
export function wrapServer(f: WrapFlags, command: string[]): WrapServer {
  return {
    command,
    readyUrl: f.readyUrl === undefined ? undefined : httpUrlFlag('--ready-url', f.readyUrl),
    readyLog: regexFlag('--ready-log', f.readyLog),
    completionUrl: f.completion === false ? false : f.completionUrl,
    readyTimeoutSeconds: durationFlag('--ready-timeout', f.readyTimeout, { bareSeconds: true }),
    stopTimeoutSeconds: durationFlag('--stop-timeout', f.stopTimeout, { bareSeconds: true }),
    stageRules: (f.stage ?? []).map(parseStageFlag),
  };
}

import type { Command } from 'commander';
import { addReportOptions, addTelemetryOptions, type Runner } from '../cli/context.js';
import { ColdstartError } from '../core/errors.js';
import { profileCommand, splitWrap, type ProfileFlags } from '../profile/run.js';
import { withFlagNames } from '../cli/flag-names.js';
import { defaultEngines, type Engines } from '../profile/engines.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * Engine options profile's flags set (the loader's devices and page-cache mode): a refusal names the flag. A usage
 * error inside a phase is rethrown by profile (run.ts), so it reaches this wrapper.
 */
const FLAG_NAMES = { devices: '--devices', cache: '--cache' };

/** `engines` are the real ones by default; tests pass stand-ins (an object of functions). */
export function registerProfile(program: Command, run: Runner, engines: Engines = defaultEngines): void {
  addTelemetryOptions(addReportOptions(
    program
      .command('profile')
      .description('profile a cold start phase by phase (default model: the built-in demo)')
      .usage('[options] [model]\n       coldstart profile [options] [model] --ready-url URL -- <server…>')
      .argument('[model]', 'alias (llama3-8b…), Hub repo id, local model directory or weights file (default: demo)')
      .allowExcessArguments(true)
      .option('--runs <n>', 'measured runs', '1')
      .option('--warmup <n>', 'unmeasured warmup runs first', '0')
      .option('--only <phases>', 'comma-separated phases to run (container,cuda-init,download,gpu-load,warmup)')
      .option('--synthetic', 'build a shape-accurate synthetic checkpoint for an alias (random bytes, cached)')
      .option('--format <fmt>', 'synthetic checkpoint format: safetensors or bin', 'safetensors')
      .option('--dtype <dtype>', 'synthetic checkpoint dtype: bf16, fp16 or fp32 (default: the model\'s)')
      .option('--estimate', 'predict every phase from measured rates; move no weight bytes')
      .option('--cache <mode>', 'page cache for gpu-load: cold (drop the files first), warm or as-is', 'cold')
      .option('--devices <list>', 'GPU indexes to use, e.g. 0,1 (after CUDA_VISIBLE_DEVICES)')
      .option('--verify', 'gpu-load: copy a sample of every tensor back and compare it with the file (exit 1 on a mismatch)')
      .option('--no-download', 'do not download: estimate the download from Hub file sizes and a measured rate')
      .option('--revision <rev>', 'Hub revision (branch, tag or commit)')
      .option('--framework <name>', 'profile your stack: torch, safetensors or transformers in its own Python process, the floor beside each step')
      .option('--url <url>', 'warm up a running inference server at this URL')
      .option('--image <image>', 'time a container start of this image with podman/docker run --rm (pull when absent)')
      .option('--container-runtime <rt>', 'podman or docker (default: the first that works)')
      .option('--since <time>', 'when the start was scheduled (RFC 3339 or Unix epoch seconds, e.g. the pod\'s creationTimestamp): adds scheduled → started')
      .option('--container-arg <arg>', 'extra argument for `run`, e.g. --container-arg=--runtime=runc (repeatable)', collect)
      .option('--gpu-price <usd>', 'GPU price per hour, for the warm-pool trade-off')
      .option('--warm-instances <n>', 'warm instances the warm-pool trade-off prices', '1')
      .option('--no-floor', 'with --framework or a wrapped server: your numbers only; skip the floor (native probe, loader, rate probe) that runs after your stack')
      .option('--probe-bytes <n>', 'size of the rate-probe file (default: the model size, 64 MiB–1 GiB)')
      .option('--ready-url <url>', 'wrap mode: the server is ready when this URL answers 2xx')
      .option('--ready-log <regex>', 'wrap mode: the server is ready when a log line matches')
      .option('--ready-timeout <s>', 'wrap mode: seconds to wait for ready', '600')
      .option('--completion-url <url>', 'wrap mode: endpoint for the first completion (default: /v1/completions, else /generate)')
      .option('--no-completion', 'wrap mode: do not send a first completion')
      .option('--stop-timeout <s>', 'wrap mode: seconds between SIGTERM and SIGKILL when stopping the server', '10')
      .option('--stage <name=regex>', "wrap mode: a log line that ends a stage, 'name[:phase]=REGEX' (a (number) group is its printed duration; repeatable)", collect),
  )).action(
    run(async (ctx, ...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const flags = cmd.opts() as ProfileFlags;
      const { model, command } = splitWrap(ctx.proc.argv, cmd.args);
      const wrapping = ctx.proc.argv.includes('--');
      if (wrapping && command.length === 0) throw new ColdstartError('USAGE', 'wrap mode: no server command after --', { hint: 'Example: coldstart profile --ready-url http://127.0.0.1:8000/health -- vllm serve MODEL' });
      if (!wrapping && cmd.args.length > 1) throw new ColdstartError('USAGE', `profile takes one model, got ${cmd.args.length}: ${cmd.args.join(' ')}`, { hint: 'To wrap a server, put its command after --.' });
      if (!wrapping && (flags.readyUrl || flags.readyLog)) throw new ColdstartError('USAGE', '--ready-url/--ready-log are for wrap mode: put the server command after --');
      return withFlagNames(FLAG_NAMES, () => profileCommand(ctx, model, command, flags, engines));
    }),
  );
}

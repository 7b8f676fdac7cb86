import type { Command } from 'commander';
import { resolve } from 'node:path';
import { addReportOptions, emitOptions, type Context, type ReportFlags, type Runner } from './context.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { emitReport } from '../core/emit.js';
import { sizeFlag } from '../core/flags.js';
import { convertCheckpoint, targetDtype, type ConvertOptions } from '../convert/convert.js';
import { convertReport, convertText } from '../convert/report.js';

interface ConvertFlags extends ReportFlags {
  output?: string;
  dtype?: string;
  shardSize?: string;
  key?: string;
  verify?: boolean;
  force?: boolean;
  fsync?: boolean;
  allowAmplification?: boolean;
}

/**
 * convert's refusals are one line (issue #11): the hint joins the message after "; " instead of a second line
 * (the JSON error document keeps the same text).
 */
function oneLine(e: unknown): unknown {
  if (!(e instanceof ColdstartError) || !e.hint) return e;
  const msg = `${e.message}; ${e.hint.replace(/\.$/, '')}`;
  return new ColdstartError(e.code, msg, { cause: e, details: e.details });
}

/** Every flag of `coldstart convert`, parsed once into the conversion's typed options (paths from the working directory). */
function convertOptions(ctx: Context, input: string, f: ConvertFlags): ConvertOptions {
  const dtype = f.dtype === undefined ? undefined : (targetDtype(f.dtype) ?? undefined);
  if (f.dtype !== undefined && !dtype) throw invalidArg('--dtype', 'f16, bf16 or f32', f.dtype);
  return {
    input: resolve(ctx.cwd, input),
    // A trailing slash asks for a directory output, even for a single-file input.
    output: f.output === undefined ? undefined : f.output.endsWith('/') ? `${resolve(ctx.cwd, f.output)}/` : resolve(ctx.cwd, f.output),
    outputName: '--output',
    dtype,
    shardSize: f.shardSize === undefined ? undefined : sizeFlag('--shard-size', f.shardSize),
    key: f.key,
    verify: !!f.verify,
    force: !!f.force,
    fsync: f.fsync !== false,
    allowAmplification: !!f.allowAmplification,
    signal: ctx.signal,
  };
}

export function registerConvert(program: Command, run: Runner): void {
  const cmd = program
    .command('convert')
    .description('convert PyTorch .bin/.pt checkpoints to safetensors, safely (nothing is executed) and streaming')
    .argument('<input>', 'checkpoint file or Hugging Face model directory')
    .option('-o, --output <path>', 'output file or directory')
    .option('--dtype <dtype>', 'convert floating tensors to f16, bf16 or f32')
    .option('--shard-size <size>', 'maximum shard size, e.g. 5GB')
    .option('--key <key>', 'which entry of a wrapping checkpoint holds the weights')
    .option('--verify', 're-read the output and compare every tensor with the source')
    .option('--force', 'overwrite an existing output')
    .option('--no-fsync', 'do not fsync outputs before renaming them into place (faster, less durable)')
    .option('--allow-amplification', 'write tensors even when stride-0/overlapping views expand them past 2x the stored bytes');
  addReportOptions(cmd).action(
    run(async (ctx, input: string, flags: ConvertFlags) => {
      const opts = convertOptions(ctx, input, flags);
      const emit = emitOptions(ctx, flags, [opts.input]);
      // A redrawn bar on a TTY; elsewhere a plain line every 5 s (nothing for quick runs).
      const bar = ctx.out.progress('converting', 'planning…', { plainEverySeconds: 5 });
      const warnings: string[] = [];
      const result = await convertCheckpoint({ ...opts, onProgress: (d, t) => bar.update(d, t), warn: (m) => warnings.push(m) })
        .catch((e: unknown) => Promise.reject(oneLine(e)))
        .finally(() => bar.end());
      return emitReport(ctx.out, convertReport(result, warnings), ctx.cwd, { ...emit, human: () => convertText(result, ctx.cwd, ctx.out.style) });
    }),
  );
}

import type { Command } from 'commander';
import type { Runner } from '../cli.js';
import { addReportOptions } from './context.js';
import { notYet } from './pending.js';

export function registerWarmup(program: Command, run: Runner): void {
  addReportOptions(
    program
      .command('warmup')
      .description('absorb first-inference cost before traffic (ONNX, HTTP servers, Python frameworks) and cache what can be cached')
      .argument('[model]', 'ONNX model file or model directory')
      .option('--url <url>', 'warm up a running HTTP inference server')
      .option('--framework <name>', 'torch or transformers, through Python')
      .option('--runs <n>', 'steady-state runs after the first', '5'),
  ).action(run(async () => notYet('coldstart warmup', 'issue #6')));
}

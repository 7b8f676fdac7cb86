import type { Command } from 'commander';
import type { Runner } from '../cli.js';
import { addReportOptions } from './context.js';
import { notYet } from './pending.js';

export function registerProfile(program: Command, run: Runner): void {
  addReportOptions(
    program
      .command('profile')
      .description('profile a cold start phase by phase (default model: the built-in demo)')
      .argument('[model]', 'alias (llama3-8b…), Hub repo id, local model directory or weights file', 'demo')
      .option('--runs <n>', 'measured runs', '1')
      .option('--warmup <n>', 'unmeasured warmup runs first', '0')
      .option('--only <phases>', 'comma-separated phases to run')
      .option('--synthetic', 'build a shape-accurate synthetic checkpoint for an alias')
      .option('--estimate', 'predict every phase from measured rates; move no weight bytes'),
  ).action(run(async () => notYet('coldstart profile', 'issue #7')));
}

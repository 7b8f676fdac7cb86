import type { Command } from 'commander';
import type { Runner } from '../cli.js';
import { notYet } from './pending.js';

export function registerCache(program: Command, run: Runner): void {
  program
    .command('cache')
    .description('pre-cache a model into the Hugging Face cache or a --local-dir so a cold start downloads nothing')
    .argument('<repo>', 'Hub repo id or alias')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--local-dir <dir>', 'write plain files into DIR instead of the HF cache')
    .option('--include <glob...>', 'only files matching these globs')
    .option('--exclude <glob...>', 'skip files matching these globs')
    .action(run(async () => notYet('coldstart cache', 'issue #5')));
}

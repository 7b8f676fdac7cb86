import type { Command } from 'commander';
import type { Runner } from '../cli.js';
import { notYet } from './pending.js';

export function registerConvert(program: Command, run: Runner): void {
  program
    .command('convert')
    .description('convert PyTorch .bin/.pt checkpoints to safetensors, safely (nothing is executed) and streaming')
    .argument('<input>', 'checkpoint file or Hugging Face model directory')
    .option('-o, --output <path>', 'output file or directory')
    .option('--dtype <dtype>', 'convert floating tensors to f16, bf16 or f32')
    .option('--shard-size <size>', 'maximum shard size, e.g. 5GB')
    .option('--key <key>', 'which entry of a wrapping checkpoint holds the weights')
    .option('--verify', 're-read the output and compare every tensor with the source')
    .action(run(async () => notYet('coldstart convert', 'issue #3')));
}

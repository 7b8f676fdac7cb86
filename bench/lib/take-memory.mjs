#!/usr/bin/env node
// Memory pressure for the benchmarks and the device proof: this process takes anonymous memory, touches every page
// (as a server's heap is: the kernel must find real pages, reclaiming the page cache for them), keeps it a while and
// ends, printing one JSON line {took, room, seconds}. Either a number of bytes, or all but --leave GiB of what
// src/platform/system.ts's memoryRoom says is available (the host's, or a cgroup limit's):
//   node bench/lib/take-memory.mjs --leave 4 [--keep-ms 3000]
//   node bench/lib/take-memory.mjs --bytes 21474836480
import { fileURLToPath } from 'node:url';
import { cliArgs } from './args.mjs';

const cli = cliArgs();
const { memoryRoom } = await import(fileURLToPath(new URL('../../dist/platform/system.js', import.meta.url)));
const room = memoryRoom();
const bytes = cli.opt('--bytes', '') ? Number(cli.opt('--bytes', '0')) : Math.max(0, (room?.availableBytes ?? 0) - Number(cli.opt('--leave', '4')) * 2 ** 30);
const keepMs = Number(cli.opt('--keep-ms', '3000'));
const piece = 256 << 20;
const t0 = process.hrtime.bigint();
const held = [];
for (let n = bytes; n > 0; n -= piece) held.push(Buffer.allocUnsafe(Math.min(n, piece)).fill(1));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
setTimeout(() => process.stdout.write(`${JSON.stringify({ took: bytes, room, seconds, pieces: held.length })}\n`), keepMs);

#!/usr/bin/env node
// A stand-in for CRIU (COLDSTART_CRIU=this file) with CRIU's command line and exit codes, for tests of what
// snapshot/restore report (budgets, totals) on machines without a working CRIU: `dump` records the process's argv and
// cwd in the image and kills its process group (as a dump does); `restore --restore-detached` starts that command
// again, detached, with its output on the inherited fd 3 when --inherit-fd is given, and writes its pid to --pidfile.
// State in memory is not kept (a real restore keeps it): only what coldstart measures around CRIU is real.
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [cmd, ...args] = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

if (cmd === '--version') {
  console.log('Version: 4.2');
  process.exit(0);
}
if (cmd === 'dump') {
  const pid = Number(opt('-t'));
  const dir = opt('-D');
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  writeFileSync(join(dir, 'fake-process.json'), JSON.stringify({ argv, cwd: readlinkSync(`/proc/${pid}/cwd`) }));
  writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(4096, 7));
  writeFileSync(join(dir, opt('-o') ?? 'dump.log'), 'fake criu: dumped\n');
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  process.exit(0);
}
if (cmd === 'restore') {
  const dir = opt('-D');
  const { argv, cwd } = JSON.parse(readFileSync(join(dir, 'fake-process.json'), 'utf8'));
  const out = args.includes('--inherit-fd') ? 3 : 'ignore';
  const child = spawn(argv[0], argv.slice(1), { cwd, detached: true, stdio: ['ignore', out, out] });
  writeFileSync(opt('--pidfile'), String(child.pid));
  child.unref();
  process.exit(0);
}
console.error(`fake criu: ${cmd}: not supported`);
process.exit(1);

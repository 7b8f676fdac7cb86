#!/usr/bin/env node
// Stands in for a coldstart process that dies: starts the watchdog shim (the file named by env COLDSTART_SHIM)
// exactly as wrap mode does — own session, a pipe on stdin, status on fd 3 — with the command after "--",
// prints its status lines to stdout, and then waits to be killed.
import { spawn } from 'node:child_process';

const cmd = process.argv.slice(process.argv.indexOf('--') + 1);
const shim = spawn(process.execPath, [process.env.COLDSTART_SHIM, process.env.GRACE ?? '2', ...cmd], { detached: true, stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
shim.stdio[3].pipe(process.stdout);
setInterval(() => {}, 1 << 30);

'use strict';
// Runs as the user the test chose (root drops to nobody through setpriv): starts `sleep`, asks the addon at argv[2] to
// page out the first page of its first mapping, and prints the result or the error's code and message as JSON.
const { spawn } = require('node:child_process');
const { readFileSync } = require('node:fs');

const addon = require(process.argv[2]);
const child = spawn('sleep', ['30'], { stdio: 'ignore' });
setTimeout(async () => {
  try {
    const first = readFileSync(`/proc/${child.pid}/maps`, 'utf8').split('\n')[0].split(' ')[0];
    const start = parseInt(first.split('-')[0], 16);
    const r = await addon.pageOut({ pid: child.pid, ranges: Float64Array.from([start, 4096]) });
    process.stdout.write(JSON.stringify({ result: r }));
  } catch (e) {
    process.stdout.write(JSON.stringify({ code: e.code, message: e.message }));
  } finally {
    child.kill('SIGKILL');
  }
}, 100);

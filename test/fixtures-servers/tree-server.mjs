#!/usr/bin/env node
// A server that starts a grandchild in a new session (setsid: it leaves the server's process group), then
// serves GET /health on 127.0.0.1:PORT. Writes "serverPid grandchildPid" to PIDFILE once both run.
// Usage: tree-server.mjs PORT PIDFILE [--stubborn-grandchild] [--double-fork]
//   --stubborn-grandchild: the grandchild ignores SIGTERM
//   --double-fork: the grandchild is started by an intermediate process that exits at once (a daemon's
//   double fork), so the grandchild is re-parented away from the server before anyone can see the link
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const [port, pidfile] = process.argv.slice(2);
const stubborn = process.argv.includes('--stubborn-grandchild');
// The grandchild reports in (GCFILE) once its SIGTERM handler is installed; the server is ready only then. Written
// aside and renamed: GCFILE exists only with the pid in it (seen as soon as it was created, before its write, it read
// empty, and the server wrote a pid file with no grandchild in it — a failure seen under a loaded CI run).
const gcfile = `${pidfile}.gc`;
const fs = "require('fs')";
const code = `${stubborn ? "process.on('SIGTERM', () => {});" : ''} ${fs}.writeFileSync(${JSON.stringify(`${gcfile}.part`)}, String(process.pid)); ${fs}.renameSync(${JSON.stringify(`${gcfile}.part`)}, ${JSON.stringify(gcfile)}); setInterval(() => {}, 1 << 30);`;
const doubleFork = process.argv.includes('--double-fork');
const gc = doubleFork
  ? spawn(process.execPath, ['-e', `require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(code)}], { detached: true, stdio: 'ignore' }).unref(); process.exit(0);`], { stdio: 'ignore' })
  : spawn(process.execPath, ['-e', code], { detached: true, stdio: 'ignore' });
gc.unref();
process.on('SIGTERM', () => process.exit(0));
while (!existsSync(gcfile)) await new Promise((r) => setTimeout(r, 5));
createServer((req, res) => {
  res.statusCode = req.url === '/health' ? 200 : 404;
  res.end();
}).listen(Number(port), '127.0.0.1', () => {
  writeFileSync(pidfile, `${process.pid} ${doubleFork ? readFileSync(gcfile, 'utf8').trim() : gc.pid}`);
  process.stderr.write('listening\n');
});

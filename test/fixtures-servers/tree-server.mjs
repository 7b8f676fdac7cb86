#!/usr/bin/env node
// A server that starts a grandchild in a new session (setsid: it leaves the server's process group), then
// serves GET /health on 127.0.0.1:PORT. Writes "serverPid grandchildPid" to PIDFILE once both run.
// Usage: tree-server.mjs PORT PIDFILE [--stubborn-grandchild]  (the grandchild then ignores SIGTERM)
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';

const [port, pidfile] = process.argv.slice(2);
const stubborn = process.argv.includes('--stubborn-grandchild');
// The grandchild reports in (GCFILE) once its SIGTERM handler is installed; the server is ready only then.
const gcfile = `${pidfile}.gc`;
const code = `${stubborn ? "process.on('SIGTERM', () => {});" : ''} require('fs').writeFileSync(${JSON.stringify(gcfile)}, String(process.pid)); setInterval(() => {}, 1 << 30);`;
const gc = spawn(process.execPath, ['-e', code], { detached: true, stdio: 'ignore' });
gc.unref();
process.on('SIGTERM', () => process.exit(0));
while (!existsSync(gcfile)) await new Promise((r) => setTimeout(r, 5));
createServer((req, res) => {
  res.statusCode = req.url === '/health' ? 200 : 404;
  res.end();
}).listen(Number(port), '127.0.0.1', () => {
  writeFileSync(pidfile, `${process.pid} ${gc.pid}`);
  process.stderr.write('listening\n');
});

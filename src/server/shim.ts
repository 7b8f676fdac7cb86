/**
 * The watchdog between coldstart and a wrapped server. coldstart starts `node -e SHIM_SOURCE -- GRACE CMD…`
 * in its own session with a pipe on stdin and a status pipe on fd 3; the shim starts the server in a new
 * session of its own (so the terminal's Ctrl-C and a kill of coldstart's group reach neither), with stdout and
 * stderr inherited (the server writes straight into coldstart's pipes: the shim copies nothing).
 *
 * Every SCAN_MS the shim walks /proc and remembers every descendant it has seen (pid + start time, so a
 * reused pid is never signalled), including children that left the server's process group or session with
 * setsid. When its stdin reaches end of file — coldstart closed it to stop the server, or coldstart died by
 * any signal including SIGKILL, since the kernel closes a dead process's pipes — it sends SIGTERM to the
 * server's group and to every remembered descendant still alive, waits GRACE seconds (rescanning, so children
 * born during shutdown are caught too), sends SIGKILL to what is left, and reports on fd 3 which signal each
 * process really needed. If the server exits on its own, its leftover descendants are stopped the same way.
 *
 * When python3 is on PATH (Linux), wrap.ts starts the shim through it to set PR_SET_CHILD_SUBREAPER (kept
 * across execve): a descendant that double-forks then re-parents to the shim instead of init and is always
 * found. Without python3, a descendant born and re-parented away (double fork + exit of its parent) between
 * two scans is unknown to the shim; it is stopped only if it stayed in the server's process group.
 * The shim itself can be killed with SIGKILL by something else (the OOM killer); then only the server's
 * process group is stopped (by coldstart's fallback), not escaped descendants.
 */
export const SHIM_SOURCE = String.raw`
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const args = process.argv.slice(1); // node -e SRC -- GRACE CMD…: argv is [node, GRACE, CMD…]
const grace = Number(args[0]) * 1000;
const cmd = args.slice(1);
const SCAN_MS = Number(process.env.COLDSTART_SHIM_SCAN_MS || 100);
const status = (o) => { try { fs.writeSync(3, JSON.stringify(o) + '\n'); } catch {} };
const hr = () => process.hrtime.bigint().toString();
const hasProc = fs.existsSync('/proc/self/stat');
function stat(pid) {
  try {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], ppid: Number(f[1]), start: f[19] };
  } catch { return null; }
}
const seen = new Map(); // pid -> start ticks
function scan() {
  if (!hasProc) return;
  const kids = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    const st = stat(d);
    if (!st) continue;
    const l = kids.get(st.ppid) || [];
    l.push([Number(d), st.start]);
    kids.set(st.ppid, l);
  }
  const q = [process.pid];
  let added = false;
  while (q.length) {
    for (const [pid, start] of kids.get(q.pop()) || []) {
      if (!seen.has(pid)) { seen.set(pid, start); added = true; }
      q.push(pid);
    }
  }
  if (added) status({ event: 'pids', pids: [...seen.keys()] });
}
function alive(pid) {
  if (!hasProc) { try { process.kill(pid, 0); return true; } catch { return false; } }
  const st = stat(pid);
  return !!st && st.state !== 'Z' && st.state !== 'X' && st.start === seen.get(pid);
}
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
let child;
try {
  child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
} catch (e) {
  status({ event: 'error', message: String(e && e.message || e) });
  process.exit(127);
}
let exitInfo = null;
child.on('error', (e) => { status({ event: 'error', message: e.message }); exitInfo = { code: 127, signal: null }; stop('spawn-error'); });
if (child.pid) {
  seen.set(child.pid, (stat(child.pid) || {}).start);
  status({ event: 'spawned', pid: child.pid, hr: hr() });
}
const timer = setInterval(scan, SCAN_MS);
scan();
child.on('exit', (code, signal) => {
  exitInfo = { code, signal };
  status({ event: 'exit', code, signal, hr: hr() });
  stop('server-exit');
});
let stopping = false;
function signalAll(sig, list) {
  for (const pid of list) { try { process.kill(pid, sig); } catch {} }
}
function stop(why) {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  const t0 = process.hrtime.bigint();
  scan();
  if (child.pid) { try { process.kill(-child.pid, 'SIGTERM'); } catch {} }
  const termed = [...seen.keys()].filter((p) => p === child.pid || alive(p));
  signalAll('SIGTERM', termed);
  const needKill = [];
  const tick = () => {
    scan();
    const fresh = [...seen.keys()].filter((p) => alive(p) && !termed.includes(p));
    if (fresh.length) { signalAll('SIGTERM', fresh); termed.push(...fresh); }
    const left = termed.filter((p) => alive(p));
    const waited = Number(process.hrtime.bigint() - t0) / 1e6;
    if (left.length === 0 && (exitInfo || !child.pid)) return done();
    if (waited >= grace) {
      if (child.pid) { try { process.kill(-child.pid, 'SIGKILL'); } catch {} }
      signalAll('SIGKILL', left);
      needKill.push(...left);
      return setTimeout(done, 50);
    }
    setTimeout(tick, 25);
  };
  const done = () => {
    const survivors = [...seen.keys()].filter((p) => alive(p));
    status({ event: 'stopped', why, signal: needKill.length ? 'SIGKILL' : 'SIGTERM', seconds: Number(process.hrtime.bigint() - t0) / 1e9, pids: termed, sigkilled: needKill, survivors, exit: exitInfo });
    process.exit(0);
  };
  tick();
}
process.stdin.on('data', () => {});
process.stdin.on('end', () => stop('stdin-closed'));
process.stdin.on('error', () => stop('stdin-error'));
`;

'use strict';
/**
 * The watchdog between coldstart and a server it starts (src/server/lifecycle.ts). coldstart runs
 * `node shim.cjs GRACE CMD…` in its own session with a pipe on stdin and a status pipe on fd 3; the shim starts the
 * server in a new session of its own (so the terminal's Ctrl-C and a kill of coldstart's group reach neither), with
 * stdout and stderr inherited (the server writes straight into coldstart's pipes, or into the log file coldstart
 * opened for it: the shim copies nothing).
 *
 * Every SCAN_MS the shim walks /proc and remembers every descendant it has seen (pid + start time, so a reused pid
 * is never signalled), including children that left the server's process group or session with setsid. When its
 * stdin reaches end of file — coldstart closed it to stop the server, or coldstart died by any signal including
 * SIGKILL, since the kernel closes a dead process's pipes — it sends SIGTERM to the server's group and to every
 * remembered descendant still alive, waits GRACE seconds (rescanning, so children born during shutdown are caught
 * too), sends SIGKILL to what is left, and reports on fd 3 which signal each process really needed. If the server
 * exits on its own, its leftover descendants are stopped the same way.
 *
 * When python3 is on PATH (Linux), coldstart starts the shim through ./subreaper.py to set PR_SET_CHILD_SUBREAPER
 * (kept across execve): a descendant that double-forks then re-parents to the shim instead of init and is always
 * found. Without python3, a descendant born and re-parented away (double fork + exit of its parent) between two
 * scans is unknown to the shim; it is stopped only if it stayed in the server's process group. The shim itself can
 * be killed with SIGKILL by something else (the OOM killer); then only the server's process group is stopped (by
 * coldstart's fallback), not escaped descendants.
 *
 * Required as a module (coldstart does, for a tree it did not start: a restored snapshot), it runs nothing and
 * exports the tree tracker, `Tree`, that the shim itself uses: one way to find and stop a process tree.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');

const hasProc = fs.existsSync('/proc/self/stat');

/** State, parent and start time (clock ticks since boot) of a process from /proc/PID/stat; null when it is gone. */
function stat(pid) {
  try {
    const s = fs.readFileSync('/proc/' + pid + '/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: f[0], ppid: Number(f[1]), start: f[19] };
  } catch {
    return null;
  }
}

function signalAll(sig, list) {
  for (const pid of list) {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** Every process below `root` ever seen, each remembered with its start time. */
class Tree {
  constructor(root) {
    this.root = root;
    /** pid -> start ticks */
    this.seen = new Map();
  }

  /** Remembers `pid` (with its start time now). */
  add(pid) {
    if (!this.seen.has(pid)) this.seen.set(pid, (stat(pid) || {}).start);
  }

  /** Walks /proc from the root and remembers each descendant; true when one was new. */
  scan() {
    if (!hasProc) return false;
    const kids = new Map();
    for (const d of fs.readdirSync('/proc')) {
      if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
      const st = stat(d);
      if (!st) continue;
      const l = kids.get(st.ppid) || [];
      l.push([Number(d), st.start]);
      kids.set(st.ppid, l);
    }
    const q = [this.root];
    let added = false;
    while (q.length) {
      for (const [pid, start] of kids.get(q.pop()) || []) {
        if (!this.seen.has(pid)) {
          this.seen.set(pid, start);
          added = true;
        }
        q.push(pid);
      }
    }
    return added;
  }

  /** Alive, not a zombie, and still the process remembered (same start time). */
  alive(pid) {
    if (!hasProc) {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    }
    const st = stat(pid);
    return !!st && st.state !== 'Z' && st.state !== 'X' && st.start === this.seen.get(pid);
  }

  pids() {
    return [...this.seen.keys()];
  }

  /**
   * Stops the tree: SIGTERM to `group` (a process group id, or 0) and to every remembered process alive (and to
   * `always`), rescanning every 25 ms (newcomers get SIGTERM too) until all are gone and `settled()` says so, or
   * `graceMs` passed; then SIGKILL to what is left. Resolves with which signal was really needed, for which pids.
   */
  stop({ graceMs, group = 0, always = [], settled = () => true }) {
    return new Promise((resolve) => {
      const t0 = process.hrtime.bigint();
      this.scan();
      if (group) signalAll('SIGTERM', [-group]);
      const termed = this.pids().filter((p) => always.includes(p) || this.alive(p));
      signalAll('SIGTERM', termed);
      const needKill = [];
      const done = () => {
        const survivors = this.pids().filter((p) => this.alive(p));
        resolve({ signal: needKill.length ? 'SIGKILL' : 'SIGTERM', seconds: Number(process.hrtime.bigint() - t0) / 1e9, pids: termed, sigkilled: needKill, survivors });
      };
      const tick = () => {
        this.scan();
        const fresh = this.pids().filter((p) => this.alive(p) && !termed.includes(p));
        if (fresh.length) {
          signalAll('SIGTERM', fresh);
          termed.push(...fresh);
        }
        const left = termed.filter((p) => this.alive(p));
        const waited = Number(process.hrtime.bigint() - t0) / 1e6;
        if (left.length === 0 && settled()) return done();
        if (waited >= graceMs) {
          if (group) signalAll('SIGKILL', [-group]);
          signalAll('SIGKILL', left);
          needKill.push(...left);
          return setTimeout(done, 50);
        }
        setTimeout(tick, 25);
      };
      tick();
    });
  }
}

/** The watchdog: `node shim.cjs GRACE CMD…`. */
function main(args) {
  const grace = Number(args[0]) * 1000;
  const cmd = args.slice(1);
  const SCAN_MS = Number(process.env.COLDSTART_SHIM_SCAN_MS || 100);
  const status = (o) => {
    try {
      fs.writeSync(3, JSON.stringify(o) + '\n');
    } catch {
      /* coldstart is gone */
    }
  };
  const hr = () => process.hrtime.bigint().toString();
  const tree = new Tree(process.pid);
  const scan = () => {
    if (tree.scan()) status({ event: 'pids', pids: tree.pids() });
  };
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
  let child;
  try {
    child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  } catch (e) {
    status({ event: 'error', message: String((e && e.message) || e) });
    process.exit(127);
  }
  let exitInfo = null;
  let stopping = false;
  let timer = null;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    if (timer) clearInterval(timer);
    tree
      .stop({ graceMs: grace, group: child.pid || 0, always: child.pid ? [child.pid] : [], settled: () => !!exitInfo || !child.pid })
      .then((r) => {
        status({ event: 'stopped', why, ...r, exit: exitInfo });
        process.exit(0);
      });
  };
  child.on('error', (e) => {
    status({ event: 'error', message: e.message });
    exitInfo = { code: 127, signal: null };
    stop('spawn-error');
  });
  if (child.pid) {
    tree.add(child.pid);
    status({ event: 'spawned', pid: child.pid, hr: hr() });
  }
  timer = setInterval(scan, SCAN_MS);
  scan();
  child.on('exit', (code, signal) => {
    exitInfo = { code, signal };
    status({ event: 'exit', code, signal, hr: hr() });
    stop('server-exit');
  });
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => stop('stdin-closed'));
  process.stdin.on('error', () => stop('stdin-error'));
}

module.exports = { Tree, stat };
if (require.main === module) main(process.argv.slice(2));

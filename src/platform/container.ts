/**
 * The `container` phase. Inside a container: the time from the container's init process (PID 1) start to
 * coldstart's own start, read from /proc (10 ms resolution), plus this process's own start-up. From outside:
 * `--image IMG` times `podman`/`docker run --rm` of the image (and the pull when the image is absent).
 * Runtime failures that come from host settings (ulimits above the hard limit, crun on a hybrid cgroup
 * layout, no daemon) are reported with the setting to change; a missing image that cannot be pulled is a
 * pull failure, never a "slow start".
 */
import { ColdstartError, invalidArg } from '../core/errors.js';
import { containerRuntime } from './system.js';
import { readProcStat, uptimeSeconds } from './procfs.js';
import { Stopwatch, epochSeconds, processSeconds } from '../core/clock.js';
import { formatDuration } from '../core/format.js';
import type { PhaseHandle } from '../core/phases.js';

type Env = Record<string, string | undefined>;

/** Minimal inits a container entrypoint uses to run one program directly (PID 1 forks it and waits). */
export const DIRECT_INITS = ['tini', 'tini-static', 'dumb-init', 'docker-init', 'catatonit', 'podman-init'];
/** A machine's init: PID 1 is this outside any PID namespace; its start is boot, never a container start. */
const MACHINE_INITS = ['systemd', 'init', 'launchd', 'upstart', 'openrc-init', 'runit', 'busybox'];

export interface InsideContainer {
  runtime: string;
  pid1: { comm: string; startSeconds: number };
  self: { pid: number; ppid: number; parentComm: string | null; startSeconds: number };
  /** True when PID 1 → coldstart is the entrypoint's own time (coldstart is PID 1, or a minimal init started it). */
  counted: boolean;
  /** PID 1 start → coldstart's process start (exec when coldstart is PID 1); null when not counted. */
  entrypointSeconds: number | null;
  /** Why it is (or is not) counted. */
  why: string;
  /** coldstart's process start → now (Node start-up and module loading), from the process clock. */
  processToNowSeconds: number;
}

/**
 * Inside a container (or any fresh PID namespace): what can be known about the start from /proc. PID 1 →
 * coldstart counts only when coldstart is what the entrypoint runs directly — coldstart is PID 1 (exec form, or a
 * shell that exec'd it: the time before the exec is the entrypoint's), or PID 1 is a minimal init (tini,
 * dumb-init…) whose child is coldstart. A shell or anything else in between may have done other work first
 * (sleep, installs), so that time is not counted. A machine's init (systemd) is never a container start.
 * Returns null outside a container.
 */
export function measureInsideContainer(procRoot = '/proc', runtime: string | null = containerRuntime(), nowProcessSeconds = processSeconds()): InsideContainer | null {
  const p1 = readProcStat(1, procRoot);
  const me = readProcStat('self', procRoot);
  const up = uptimeSeconds(procRoot);
  if (!p1 || !me || up === null) return null;
  if (!runtime) {
    // A fresh PID namespace without runtime markers (unshare, bubblewrap, a bare runc): PID 1 is not a machine init.
    if (MACHINE_INITS.includes(p1.comm)) return null;
    runtime = 'pid namespace';
  }
  const parent = me.ppid > 0 ? readProcStat(me.ppid, procRoot) : null;
  const base = { runtime, pid1: { comm: p1.comm, startSeconds: p1.startSeconds }, self: { pid: me.pid, ppid: me.ppid, parentComm: parent?.comm ?? null, startSeconds: me.startSeconds }, processToNowSeconds: nowProcessSeconds };
  if (MACHINE_INITS.includes(p1.comm) && me.pid !== 1) {
    return { ...base, counted: false, entrypointSeconds: null, why: `PID 1 is ${p1.comm} (a machine's init): its start is boot, not a container start` };
  }
  if (me.pid === 1) {
    // coldstart is PID 1: exec form, or an entrypoint script that exec'd it. /proc keeps the fork time across exec,
    // so the time before Node started is what the entrypoint did before the exec.
    const nodeStart = up - nowProcessSeconds;
    return { ...base, counted: true, entrypointSeconds: Math.max(0, nodeStart - p1.startSeconds), why: 'coldstart is PID 1 (the entrypoint, or exec\'d by it): PID 1 start → exec of coldstart' };
  }
  if (me.ppid === 1 && DIRECT_INITS.includes(p1.comm)) {
    return { ...base, counted: true, entrypointSeconds: Math.max(0, me.startSeconds - p1.startSeconds), why: `PID 1 is ${p1.comm}, which started coldstart directly` };
  }
  const via = me.ppid === 1 ? `PID 1 (${p1.comm})` : `${parent?.comm ?? `pid ${me.ppid}`} (not PID 1 ${p1.comm})`;
  return {
    ...base,
    counted: false,
    entrypointSeconds: null,
    why: `coldstart was started by ${via}, which may have run other work first: PID 1 → coldstart is not the container's start`,
  };
}

/** Longer than this between PID 1 and coldstart: not a cold start (a long-running container or VM). */
export const MAX_INIT_AGE_SECONDS = 300;

export function recordInsideContainer(h: PhaseHandle, c: InsideContainer): void {
  h.metric('runtime', c.runtime);
  h.metric('source', 'proc');
  h.metric('pid1', c.pid1.comm);
  if (!c.counted || c.entrypointSeconds === null) {
    h.notApplicable(`inside ${c.runtime}: its start is not visible from inside; pass --since TIME (e.g. the pod's creation time) for scheduled → started`, `the runtime's own work (pull, unpack, namespaces) happens before PID 1 and is invisible from inside; ${c.why}`);
  }
  if (c.entrypointSeconds > MAX_INIT_AGE_SECONDS) {
    h.notApplicable(`inside ${c.runtime}: PID 1 started ${formatDuration(c.entrypointSeconds)} before coldstart: not a cold start (pass --since TIME, or time a start with --image)`);
  }
  h.addStep('entrypoint before coldstart', c.entrypointSeconds, `${c.why} (from /proc)`);
  h.addStep('coldstart process → profile start', c.processToNowSeconds, "coldstart's own Node start-up and module loading");
  h.note = `inside ${c.runtime}: entrypoint before coldstart (the runtime's work before PID 1 is not visible; --since adds it)`;
  h.setSeconds(c.entrypointSeconds + c.processToNowSeconds);
}

// ------------------------------------------------------------------------------------------------ --since
/** A span for a --since message: days past two days (a 56-year span in minutes reads as noise). */
function ago(seconds: number): string {
  return seconds > 2 * 86400 ? `${Math.round(seconds / 86400)} days` : formatDuration(seconds);
}

/**
 * The oldest `--since` accepted: a day before now. A pod may be created before its node booted (a scale-up: the
 * scheduler waits for a new node), so the machine's boot is no bound; `--since 0` (1970) or a stale timestamp from
 * another run is.
 */
export const SINCE_MAX_AGE_SECONDS = 24 * 3600;

/**
 * Parses a start time (profile's --since): RFC 3339 (2026-11-28T07:00:00Z, offsets allowed) or Unix epoch seconds
 * (fractions allowed). Returns epoch seconds. A time that cannot be the start of this run is refused (BAD_FLAG,
 * exit 2) naming `what` (the command passes its flag): unparseable, in the future, or more than a day old (`--since
 * 0` would make a 56-year container phase).
 */
export function parseSince(text: string, nowEpochSeconds = epochSeconds(), what = 'since'): number {
  const s = text.trim();
  let t: number;
  if (/^\d+(\.\d+)?$/.test(s)) t = Number(s);
  else if (/^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$/.test(s)) t = Date.parse(s.replace(' ', 'T')) / 1000;
  else t = NaN;
  const hint = "In Kubernetes: the pod's metadata.creationTimestamp (Downward API or kubectl get pod -o jsonpath='{.metadata.creationTimestamp}').";
  const accepted = 'an RFC 3339 time (2026-11-28T07:00:00Z) or Unix epoch seconds, within the last 24 hours';
  if (!Number.isFinite(t)) throw invalidArg(what, accepted, text, hint);
  if (t > nowEpochSeconds + 1) throw invalidArg(what, accepted, text, `That is ${ago(t - nowEpochSeconds)} in the future: check the clock of the machine that wrote the time (epoch milliseconds are not seconds).`);
  if (t < nowEpochSeconds - SINCE_MAX_AGE_SECONDS) throw invalidArg(what, accepted, text, `That is ${ago(nowEpochSeconds - t)} ago, so it cannot be when this start was scheduled. ${hint}`);
  return t;
}

export interface SinceInterval {
  since: number;
  /** t0 → coldstart's process start (Node start), seconds. */
  scheduledToStartedSeconds: number;
  /** coldstart's process start → now. */
  processToNowSeconds: number;
  /** t0 → PID 1 start and PID 1 → coldstart, when inside a container. */
  toPid1Seconds: number | null;
}

/** The interval from an external t0 (--since) to coldstart's start, split at PID 1's start when inside a container. */
export function sinceInterval(since: number, inside: InsideContainer | null, nowEpochMs = epochSeconds() * 1000, nowProcessSeconds = processSeconds(), procRoot = '/proc'): SinceInterval {
  const processStartEpoch = nowEpochMs / 1000 - nowProcessSeconds;
  let toPid1: number | null = null;
  const up = uptimeSeconds(procRoot);
  if (inside && up !== null) {
    const pid1Epoch = nowEpochMs / 1000 - (up - inside.pid1.startSeconds);
    if (pid1Epoch >= since && pid1Epoch <= processStartEpoch) toPid1 = pid1Epoch - since;
  }
  return { since, scheduledToStartedSeconds: Math.max(0, processStartEpoch - since), processToNowSeconds: nowProcessSeconds, toPid1Seconds: toPid1 };
}

export function recordSince(h: PhaseHandle, r: SinceInterval, text: string): void {
  h.metric('source', 'since');
  h.metric('since', text);
  if (r.toPid1Seconds !== null) {
    h.addStep('scheduled → PID 1 started', r.toPid1Seconds, 'pull, unpack, create (the runtime, before the entrypoint)');
    h.addStep('PID 1 → coldstart started', r.scheduledToStartedSeconds - r.toPid1Seconds, 'the entrypoint before coldstart');
  } else h.addStep('scheduled → started', r.scheduledToStartedSeconds, `--since ${text} → coldstart's process start`);
  h.addStep('coldstart process → profile start', r.processToNowSeconds, "coldstart's own Node start-up and module loading");
  h.note = `scheduled → started from --since ${text}`;
  h.setSeconds(r.scheduledToStartedSeconds + r.processToNowSeconds);
}

// ------------------------------------------------------------------------------------------------ --image
export type RuntimeName = 'podman' | 'docker';

export interface ContainerStartResult {
  runtime: RuntimeName;
  image: string;
  pulled: boolean;
  pullSeconds: number | null;
  checkSeconds: number;
  runSeconds: number;
  command: string[];
}

export interface ContainerStartOptions {
  image: string;
  runtime?: RuntimeName;
  /** Extra arguments for `run` (e.g. --runtime runc, --ulimit nofile=20000:20000). */
  runArgs?: string[];
  /** Command run in the container; default `true`. */
  cmd?: string[];
  env: Env;
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

/** The first runtime on PATH that answers; podman first (daemonless), then docker (needs its daemon). */
export async function pickRuntime(env: Env, wanted?: RuntimeName): Promise<{ runtime: RuntimeName } | { runtime: null; reason: string }> {
  const reasons: string[] = [];
  for (const rt of wanted ? [wanted] : (['podman', 'docker'] as const)) {
    const { execa } = await import('execa');
    const r = await execa(rt, ['version', '--format', rt === 'docker' ? '{{.Server.Version}}' : '{{.Client.Version}}'], { env, extendEnv: false, reject: false, timeout: 15_000 });
    if (r.exitCode === 0) return { runtime: rt };
    const msg = (r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String(r.message ?? '')) ? 'not installed' : lastLine(String(r.stderr)) || `exit ${r.exitCode}`;
    reasons.push(`${rt}: ${msg}`);
  }
  return { runtime: null, reason: `no usable container runtime (${reasons.join('; ')})` };
}

function lastLine(s: string): string {
  return (
    s
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? ''
  );
}

/** The host setting to change for a runtime failure, or null when the failure is not a known host quirk. */
export function diagnoseRunFailure(runtime: RuntimeName, stderr: string, env: Env): string | null {
  const conf = env.CONTAINERS_CONF ? `CONTAINERS_CONF (${env.CONTAINERS_CONF})` : 'containers.conf (or a file named by CONTAINERS_CONF)';
  if (/rlimit|RLIMIT_|ulimit/i.test(stderr)) {
    return runtime === 'podman'
      ? `the runtime cannot raise the default ulimits above this host's hard limits: pass --container-arg=--ulimit=nofile=20000:20000 --container-arg=--ulimit=nproc=32768:32768 (at or below \`ulimit -Hn\`/\`ulimit -Hu\`), or set default_ulimits under [containers] in ${conf}`
      : 'the runtime cannot raise the default ulimits above the hard limits: pass --container-arg=--ulimit=nofile=20000:20000, or lower default-ulimits in /etc/docker/daemon.json';
  }
  if (/crun/.test(stderr) && /cgroup|not found/i.test(stderr)) {
    return `crun cannot run here (hybrid cgroup layout, or crun is missing): pass --container-arg=--runtime=runc, or set runtime = "runc" under [engine] in ${conf}`;
  }
  if (/Cannot connect to the Docker daemon|docker\.sock/i.test(stderr)) return 'the docker daemon is not running or not reachable: start it (systemctl start docker) or use podman';
  if (/permission denied/i.test(stderr) && /cgroup|mount|namespace/i.test(stderr)) return 'the runtime lacks privileges for namespaces/cgroups here: run rootful, or allow user namespaces';
  return null;
}

async function imagePresent(runtime: RuntimeName, image: string, env: Env): Promise<boolean> {
  const args = runtime === 'podman' ? ['image', 'exists', image] : ['image', 'inspect', '--format', '{{.Id}}', image];
  const { execa } = await import('execa');
  const r = await execa(runtime, args, { env, extendEnv: false, reject: false, timeout: 30_000 });
  if (r.exitCode === 0) return true;
  const hint = diagnoseRunFailure(runtime, String(r.stderr), env);
  if (hint) throw new ColdstartError('ENV', `${runtime} image check failed: ${lastLine(String(r.stderr))}`, { hint });
  return false;
}

/**
 * Times `RUNTIME run --rm IMAGE true` (after pulling the image when absent). Throws NETWORK for a pull that
 * fails and ENV with the setting to change for a runtime that fails for host reasons.
 */
export async function timeContainerStart(opts: ContainerStartOptions): Promise<ContainerStartResult> {
  const picked = await pickRuntime(opts.env, opts.runtime);
  if (!picked.runtime) throw new ColdstartError('ENV', picked.reason, { hint: 'Install podman (or docker), or drop --image.' });
  const runtime = picked.runtime;
  const timeout = (opts.timeoutSeconds ?? 600) * 1000;
  let sw = new Stopwatch();
  const present = await imagePresent(runtime, opts.image, opts.env);
  const checkSeconds = sw.elapsed();
  let pullSeconds: number | null = null;
  if (!present) {
    sw = new Stopwatch();
    const { execa } = await import('execa');
    const r = await execa(runtime, ['pull', opts.image], { env: opts.env, extendEnv: false, reject: false, timeout, cancelSignal: opts.signal });
    pullSeconds = sw.elapsed();
    if (r.exitCode !== 0) {
      throw new ColdstartError('NETWORK', `image ${opts.image} is not present locally and the pull failed after ${formatDuration(pullSeconds)}: ${lastLine(String(r.stderr))}`, {
        hint: 'This is a pull failure, not a slow start: check the image name and the registry, or load the image first (podman load / podman import).',
        details: { pullSeconds },
      });
    }
  }
  const command = ['run', '--rm', '--pull', 'never', ...(opts.runArgs ?? []), opts.image, ...(opts.cmd?.length ? opts.cmd : ['true'])];
  sw = new Stopwatch();
  const { execa } = await import('execa');
  const r = await execa(runtime, command, { env: opts.env, extendEnv: false, reject: false, timeout, cancelSignal: opts.signal });
  const runSeconds = sw.elapsed();
  if (r.timedOut) throw new ColdstartError('TIMEOUT', `${runtime} run of ${opts.image} did not finish within ${opts.timeoutSeconds ?? 600} s`);
  if (r.exitCode !== 0) {
    const stderr = String(r.stderr);
    const hint = diagnoseRunFailure(runtime, stderr, opts.env);
    throw new ColdstartError('ENV', `${runtime} run --rm ${opts.image} failed (exit ${r.exitCode}) after ${formatDuration(runSeconds)}: ${lastLine(stderr)}`, {
      hint: hint ?? `Run \`${runtime} ${command.join(' ')}\` by hand to see why.`,
    });
  }
  return { runtime, image: opts.image, pulled: !present, pullSeconds, checkSeconds, runSeconds, command: [runtime, ...command] };
}

export function recordContainerStart(h: PhaseHandle, r: ContainerStartResult): void {
  h.addStep('image check (not counted)', r.checkSeconds, r.pulled ? 'absent: pulled' : 'present locally');
  if (r.pullSeconds !== null) h.addStep('pull', r.pullSeconds);
  h.addStep('run --rm (create, start, exit, remove)', r.runSeconds, r.command.join(' '));
  h.metric('runtime', r.runtime);
  h.metric('image', r.image);
  h.metric('pulled', r.pulled);
  h.metric('source', 'image');
  h.note = `${r.runtime} run --rm ${r.image}${r.pulled ? ' (pulled first)' : ''}`;
  h.setSeconds(r.runSeconds + (r.pullSeconds ?? 0));
}

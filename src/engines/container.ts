/**
 * The `container` phase. Inside a container: the time from the container's init process (PID 1) start to
 * coldstart's own start, read from /proc (10 ms resolution), plus this process's own start-up. From outside:
 * `--image IMG` times `podman`/`docker run --rm` of the image (and the pull when the image is absent).
 * Runtime failures that come from host settings (ulimits above the hard limit, crun on a hybrid cgroup
 * layout, no daemon) are reported with the setting to change; a missing image that cannot be pulled is a
 * pull failure, never a "slow start".
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ColdstartError } from '../core/errors.js';
import { containerRuntime } from '../core/system.js';
import { Stopwatch } from '../core/clock.js';
import { formatDuration } from '../core/format.js';
import type { PhaseHandle } from '../core/phases.js';

type Env = Record<string, string | undefined>;

/** USER_HZ: the unit of /proc/<pid>/stat start times; 100 on every mainstream Linux architecture. */
const CLK_TCK = 100;

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat). */
export function procStartTicks(pid: number | 'self', procRoot = '/proc'): number | null {
  try {
    const s = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); starttime is field 22.
    const v = Number(rest[22 - 3]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export interface InsideContainer {
  runtime: string;
  /** PID 1 start → coldstart's process start (from /proc). */
  initToProcessSeconds: number;
  /** coldstart's process start → now (Node start-up and module loading), from the process clock. */
  processToNowSeconds: number;
}

/** Inside a container: the time since its init started, from /proc; null outside a container. */
export function measureInsideContainer(procRoot = '/proc', runtime: string | null = containerRuntime()): InsideContainer | null {
  if (!runtime) return null;
  const init = procStartTicks(1, procRoot);
  const self = procStartTicks('self', procRoot);
  if (init === null || self === null) return null;
  return { runtime, initToProcessSeconds: Math.max(0, (self - init) / CLK_TCK), processToNowSeconds: performance.now() / 1000 };
}

/** Longer than this between PID 1 and coldstart: not a cold start (a long-running container or VM). */
export const MAX_INIT_AGE_SECONDS = 300;

export function recordInsideContainer(h: PhaseHandle, c: InsideContainer): void {
  h.addStep('init (PID 1) → coldstart process', c.initToProcessSeconds, 'from /proc/1/stat and /proc/self/stat');
  h.addStep('coldstart process → profile start', c.processToNowSeconds, 'Node start-up and module loading');
  h.metric('runtime', c.runtime);
  h.metric('source', 'proc');
  h.note = `inside ${c.runtime}: container init start → coldstart start (from /proc)`;
  h.setSeconds(c.initToProcessSeconds + c.processToNowSeconds);
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

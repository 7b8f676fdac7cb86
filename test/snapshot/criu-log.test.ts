/**
 * CRIU failures explained from CRIU's own log (src/snapshot/criu-log.ts), against real logs criu 4.2.1 wrote
 * (test/fixtures-criu/, see README.source): the failing line is the cause, never the harmless rlimit line logged
 * before it, and the CRIU < 4.2 socket hint appears only when the log says so.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CRIU_RULES, criuHint, diagnoseCriuLog } from '../../src/snapshot/criu-log.js';

const fixture = (f: string) => readFileSync(fileURLToPath(new URL(`../fixtures-criu/${f}`, import.meta.url)), 'utf8');

describe('diagnoseCriuLog on real CRIU logs', () => {
  it('a dump refused for a unix stream socket to outside the tree: that line is the cause, the rlimit line only harmless', () => {
    const d = diagnoseCriuLog(fixture('dump-ext-unix-stream.log'));
    expect(d.rule?.id).toBe('ext-unix-stream');
    expect(d.at).toBe('criu/sk-unix.c:881');
    expect(d.cause).toMatch(/^unix: Can't dump half of stream unix connection/);
    expect(d.harmless.map((h) => h.rule.id)).toEqual(['rlimit-nofile']);
    const hint = criuHint(d, '/img.dump.log');
    expect(hint).toContain('Full log: /img.dump.log');
    expect(hint).not.toMatch(/4\.2/);
  });

  it('a restore whose pid is taken: pid-in-use', () => {
    const d = diagnoseCriuLog(fixture('restore-pid-in-use.log'));
    expect(d.rule?.id).toBe('pid-in-use');
    expect(d.cause).toMatch(/^Can't fork for \d+: File exists$/);
  });

  it('a successful dump with the rlimit line: no cause, the line known as harmless', () => {
    const d = diagnoseCriuLog(fixture('dump-ok-inductor-pool.log'));
    expect(d.rule).toBeNull();
    expect(d.harmless).toHaveLength(1);
    expect(d.harmless[0]!.rule.harmless).toBe(true);
  });

  it('only the rlimit line and the closing line: the closing line is shown, no known cause claimed', () => {
    const d = diagnoseCriuLog("Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\nError (criu/cr-dump.c:1975): Dumping FAILED.\n");
    expect(d.cause).toBe('Dumping FAILED.');
    expect(d.rule).toBeNull();
    expect(criuHint(d, null)).toMatch(/not one coldstart knows/);
  });

  // Lines composed from CRIU's format strings (the file:line each rule names), for causes this machine cannot produce.
  it.each([
    ['Error (criu/files-ext.c:98): Can\'t dump file 12 of that type [20666] (chr 195:255 /dev/nvidiactl)', 'device-file'],
    ["Error (criu/sockets.c:640): Can't get 1:16 opt: Operation not supported", 'socket-options-kernel'],
    ["Error (criu/servicefd.c:281): Can't chose service_fd_base: 19968 20096", 'service-fd-base'],
    ['(00.123456) Error (compel/src/lib/infect.c:186): SEIZE 4242: task not stopped after seize', 'seize'],
  ])('%s → %s', (line, id) => {
    expect(diagnoseCriuLog(`${line}\nError (criu/cr-dump.c:1975): Dumping FAILED.\n`).rule?.id).toBe(id);
  });

  it('a device-file cause names the device: its numbers, its path where CRIU wrote one, its name in /proc/devices', () => {
    const d = diagnoseCriuLog(fixture('public/cuda-checkpoint-7-nvidia-chr.log'), new Map([[195, 'nvidia']]));
    expect(d.device).toEqual({ major: 195, minor: 255, path: null, name: 'nvidia' });
    expect(criuHint(d, null)).toContain('The device: chr 195:255, "nvidia" in this machine\'s /proc/devices.');
    const unnamed = diagnoseCriuLog("Error (criu/files-ext.c:98): Can't dump file 12 of that type [20666] (chr 506:0 /dev/gdrdrv)\n");
    expect(unnamed.device).toEqual({ major: 506, minor: 0, path: '/dev/gdrdrv', name: null });
    expect(criuHint(unnamed, null)).toContain("chr 506:0 (/dev/gdrdrv), a major this machine's /proc/devices does not list");
    expect(diagnoseCriuLog(fixture('restore-pid-in-use.log')).device).toBeNull();
  });

  it('every rule names its source in CRIU and a fix', () => {
    for (const r of CRIU_RULES) {
      expect(r.source).toMatch(/criu\/|compel\//);
      expect(r.fix.length).toBeGreaterThan(10);
    }
  });
});

/**
 * Logs other people posted (test/fixtures-criu/public/, README.source names each issue): CRIU 2.x to 4.x, -v2 and -v4,
 * dumps and restores, GPU servers among them. Each must come out with the cause the post was about, and the line
 * shown must be the one CRIU failed on — for a restore, often a line a restored task logged with its pid before it.
 */
describe('diagnoseCriuLog on logs from public trackers', () => {
  it.each([
    // file, rule (null: none claimed), the cause line shown, where CRIU logged it
    ['cuda-checkpoint-7-nvidia-chr.log', 'device-file', /^Can't dump file 17 of that type \[20666\] \(chr 195:255\)$/, 'criu/files-ext.c:94'],
    ['nvcf-465-gdrdrv-chr.log', 'device-file', /\(chr 506:0\)$/, 'criu/files-ext.c:98'],
    ['criu-1112-drm-chr.log', 'device-file', /\(chr 226:0\)$/, 'criu/files-ext.c:95'],
    ['criu-3040-sglang-mount-sharing.log', 'namespace-mount', /has unreachable sharing/, 'criu/mount.c:1092'],
    ['criu-3040-sglang-device-vma.log', 'device-mapping', /^handle_device_vma plugin failed/, 'criu/proc_parse.c:118'],
    ['criu-2065-device-vma-3.16.log', 'device-mapping', /^Can't handle non-regular mapping on 14090's map/, 'criu/proc_parse.c:603'],
    ['criu-2829-firecracker-sockopts.log', 'socket-options-kernel', /^sockets: Can't get 1:16 opt/, 'criu/sockets.c:628'],
    ['criu-2804-podman-sockopts.log', 'socket-options-kernel', /^sockets: Can't get 1:16 opt/, 'criu/sockets.c:628'],
    ['cuda-checkpoint-40-sglang-unix.log', 'ext-unix-stream', /peer name: \/tmp\//, 'criu/sk-unix.c:881'],
    ['criu-796-ext-unix-stream.log', 'ext-unix-stream', /^sk unix: Can't dump half of stream unix connection\.$/, 'criu/sk-unix.c:725'],
    ['criu-2692-pid-exists.log', 'pid-in-use', /^Can't fork for 15047: File exists$/, 'criu/cr-restore.c:1230'],
    ['criu-286-restored-task-tcp.log', null, /^Connected TCP socket in image$/, 'criu/sk-inet.c:654'],
    ['criu-2496-restored-task-pidfd.log', null, /^pidfd: Could not wait on temporary process/, 'criu/pidfd.c:177'],
    ['criu-2080-criu-in-tree.log', 'criu-in-tree', /^The criu itself is within dumped tree\.$/, 'compel/src/lib/infect.c:261'],
    ['zeropod-29-seccomp-eperm.log', 'seccomp-suspend', /Operation not permitted$/, 'compel/src/lib/ptrace.c:27'],
    ['criu-112-seccomp-einval.log', 'seccomp-suspend', /Invalid argument$/, 'ptrace.c:64'],
    ['criu-428-sysvipc.log', 'sysvipc-ns', /^Task 8778 with SysVIPC shmem map/, 'criu/cr-dump.c:431'],
    ['criu-2222-kerndat-ipv6.log', 'kerndat', /^Unable to create a ipv6 dgram socket/, 'criu/kerndat.c:1581'],
    ['criu-239-page-pipe-emfile.log', 'too-many-open-files', /Too many open files$/, 'page-pipe.c:49'],
    ['criu-796-restore-port-in-use.log', 'port-in-use', /^inet: Can't bind inet socket \(id 39\): Address already in use$/, 'criu/sk-inet.c:992'],
    ['criu-312-address-not-here.log', 'address-not-here', /Cannot assign requested address$/, 'criu/sk-inet.c:764'],
    ['criu-1784-pie-enomem.log', 'restore-out-of-memory', /^Can't restore 0x7f1164021000 mapping with 0xfffffffffffffff4$/, 'criu/pie/restorer.c:1518'],
  ])('%s → %s', (file, id, cause, at) => {
    const d = diagnoseCriuLog(fixture(`public/${file}`));
    expect(d.rule?.id ?? null).toBe(id);
    expect(d.cause).toMatch(cause);
    expect(d.at).toBe(at);
    expect(d.harmless).toEqual([]);
    const hint = criuHint(d, null);
    if (id) {
      expect(hint).toContain(d.rule!.fix);
      expect(hint).not.toMatch(/not one coldstart knows/);
    } else expect(hint).toMatch(/not one coldstart knows/);
  });

  it('every error line of a restore is read, pid-prefixed or not, and the closing line is never the cause', () => {
    const d = diagnoseCriuLog(fixture('public/criu-2496-restored-task-pidfd.log'));
    expect(d.errors).toHaveLength(7);
    expect(d.errors[3]).toBe('Error (criu/files.c:1221): Unable to open fd=3 id=0x6');
    expect(diagnoseCriuLog(fixture('public/criu-286-restored-task-tcp.log')).errors).toHaveLength(5);
  });

  it('a GPU process CRIU was left to save names the GPU fix, in both of the forms CRIU refuses it', () => {
    for (const f of ['cuda-checkpoint-7-nvidia-chr.log', 'criu-3040-sglang-device-vma.log']) {
      expect(criuHint(diagnoseCriuLog(fixture(`public/${f}`)), null), f).toMatch(/make every process that opened the GPU hold a CUDA context coldstart checkpoints/);
    }
  });
});

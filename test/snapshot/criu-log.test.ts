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

  it('every rule names its source in CRIU and a fix', () => {
    for (const r of CRIU_RULES) {
      expect(r.source).toMatch(/criu\/|compel\//);
      expect(r.fix.length).toBeGreaterThan(10);
    }
  });
});

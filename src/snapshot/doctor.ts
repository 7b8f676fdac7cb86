/** What `coldstart doctor` says about snapshots here: CRIU and its version, `criu check`, the driver's checkpoint API, root. */
import { shippedPath } from '../core/version.js';
import type { SnapshotEngines } from './engines.js';
import { noCheckpointApi } from './native.js';

export interface SnapshotDoctor {
  criu: { found: boolean; path?: string; version?: string; reason?: string; check: string };
  checkpointApi: { available: boolean; reason?: string };
  root: boolean;
  /** Each missing piece with its fix; empty when snapshot/restore (and park for GPU processes) work here. */
  fixes: string[];
}

export async function snapshotDoctor(env: Record<string, string | undefined>, engines: SnapshotEngines): Promise<SnapshotDoctor> {
  const root = engines.host.isRoot();
  const fixes: string[] = [];
  const f = await engines.criu.find(env);
  let check = 'not run';
  if (f.ok) {
    if (root) {
      const r = await engines.criu.check(f.criu, env);
      check = r.ok ? 'ok' : `failed: ${r.detail}`;
      if (!r.ok) fixes.push('`criu check` fails: this kernel lacks a feature CRIU needs (see its output)');
    } else check = 'not run: needs root';
    const [maj, min] = f.criu.version.split('.').map(Number);
    if ((maj ?? 0) < 4 || ((maj ?? 0) === 4 && (min ?? 0) < 2)) fixes.push(`CRIU ${f.criu.version} cannot dump TCP sockets on Linux 6.16+: install 4.2 or newer (eval "$(${shippedPath('scripts/ci-criu.sh')})")`);
  } else fixes.push(`CRIU: ${f.reason}; eval "$(${shippedPath('scripts/ci-criu.sh')})" fetches Debian forky's criu 4.2 and sets COLDSTART_CRIU`);
  if (!root) fixes.push('snapshot/restore/park need root (CRIU and the driver act on other processes)');
  let checkpointApi: SnapshotDoctor['checkpointApi'] = { available: false, reason: 'native addon unavailable' };
  if (!engines.native.unavailable()) {
    try {
      await engines.native.checkpoint(process.pid, 'state');
      checkpointApi = { available: true };
    } catch (e) {
      // The driver's own words ("not available: no CUDA driver …"), without the pid this probe happened to ask about.
      const said = ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
      checkpointApi = noCheckpointApi(e) ? { available: false, reason: said } : { available: true };
    }
  }
  if (!checkpointApi.available) fixes.push(`GPU servers (snapshot of CUDA processes, park/unpark) need an NVIDIA driver 570 or newer: ${checkpointApi.reason ?? 'not available'}`);
  return { criu: f.ok ? { found: true, path: f.criu.path, version: f.criu.version, check } : { found: false, reason: f.reason, check }, checkpointApi, root, fixes };
}

/**
 * The compile artefacts on disk as `coldstart cache artifacts` sees them: where to look (the folders given, else each
 * engine's default location), every artefact found once, each checked, and one removed — only what `ls` lists.
 */
import { existsSync, renameSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ColdstartError, fromSystemError } from '../../core/errors.js';
import { removeTemp, tempPathFor, trackTemp } from '../../core/atomic.js';
import { checkArtifact, defaultArtifactRoots, scanArtifacts, type Artifact, type ArtifactCheck } from './adopt.js';

type Env = Record<string, string | undefined>;

/** The folders to scan: those given (each must exist), else the engines' default locations that exist. */
export function artifactRoots(dirs: string[], cwd: string, env: Env): { roots: string[]; explicit: boolean } {
  if (!dirs.length) return { roots: defaultArtifactRoots(env).filter((d) => existsSync(d)), explicit: false };
  const roots = dirs.map((d) => resolve(cwd, d));
  for (const [i, d] of roots.entries()) if (!existsSync(d)) throw new ColdstartError('NOT_FOUND', `${dirs[i]}: no such file or directory`);
  return { roots, explicit: true };
}

/** Every artefact under the roots, each once (roots may overlap). */
export function listArtifacts(roots: string[]): Artifact[] {
  const seen = new Set<string>();
  const out: Artifact[] = [];
  for (const r of roots) for (const a of scanArtifacts(r)) if (!seen.has(a.path)) (seen.add(a.path), out.push(a));
  return out;
}

/** Every artefact under the roots, checked against what it records about itself. */
export function verifyArtifacts(roots: string[]): Array<Artifact & { check: ArtifactCheck }> {
  return listArtifacts(roots).map((a) => ({ ...a, check: checkArtifact(a) }));
}

/**
 * Removes one artefact, named exactly as `ls` prints it (found by scanning its parent); anything else is refused
 * and nothing removed. Renamed first (atomic: a concurrent reader sees the whole artefact or none), then deleted.
 */
export function removeArtifact(target: string, cwd: string): Artifact {
  const p = resolve(cwd, target);
  if (!existsSync(p)) throw new ColdstartError('NOT_FOUND', `${target}: no such file or directory`);
  const a = scanArtifacts(dirname(p), 3).find((x) => x.path === p) ?? scanArtifacts(p, 0).find((x) => x.path === p);
  if (!a) throw new ColdstartError('BAD_INPUT', `${target} is not a compile artefact coldstart recognises; nothing removed`, { hint: 'Pass a path exactly as `coldstart cache artifacts ls` prints it.' });
  const doomed = tempPathFor(p);
  try {
    renameSync(p, doomed);
  } catch (e) {
    throw fromSystemError(e, p, 'remove');
  }
  trackTemp(doomed);
  removeTemp(doomed);
  return a;
}

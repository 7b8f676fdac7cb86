/** What the snapshot commands (./snapshot.ts, ./park.ts) parse alike, and how they report. */
import { emitOptions, type Context, type ReportFlags } from './context.js';
import { emitReport } from '../core/emit.js';
import { invalidArg } from '../core/errors.js';
import { choiceFlag, httpUrlFlag } from '../core/flags.js';
import type { RecordedRequest } from '../server/api.js';
import { PID_MAX } from '../snapshot/manifest.js';
import type { Reported } from '../snapshot/report.js';

/**
 * A hook flag (--before-snapshot / --after-restore / --before-park / --after-unpark) and its method flag as a request;
 * null when not given. The value is a URL, optionally followed by a space and a JSON body sent with it (a URL holds
 * no unencoded space): `--after-restore 'http://127.0.0.1:8000/collective_rpc {"method": "reload_weights"}'`.
 */
export function hookFlag(flag: string, spec: string | undefined, method: string): RecordedRequest | null {
  const m = choiceFlag(`${flag}-method`, method.toUpperCase(), ['GET', 'POST'] as const);
  if (spec === undefined) return null;
  const [, url, body] = /^\s*(\S+)(?:\s+([\s\S]*\S))?\s*$/.exec(spec) ?? [];
  if (url === undefined) throw invalidArg(flag, 'a URL, optionally followed by a space and a JSON body', spec);
  if (body !== undefined) {
    try {
      JSON.parse(body);
    } catch {
      throw invalidArg(flag, 'a URL, optionally followed by a space and a JSON body (the text after the URL is not JSON)', spec);
    }
  }
  return { url: httpUrlFlag(flag, url), method: m, body: body ?? null };
}

/** A repeatable hook flag (--after-restore, --after-unpark): its requests in the order given. */
export function hookFlags(flag: string, specs: string[] | undefined, method: string): RecordedRequest[] {
  return (specs ?? []).map((v) => hookFlag(flag, v, method)!);
}

export function pidArg(v: string): number {
  const pid = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(pid) || pid < 1 || pid > PID_MAX) throw invalidArg('PID', `a process id (1 to ${PID_MAX})`, v);
  return pid;
}

/** Budgets and export paths are checked first; the engine's steps go to one progress line (a TTY only); one emitter. */
export async function report(ctx: Context, flags: ReportFlags | null, work: (step: (text: string) => void) => Promise<Reported>, label = ''): Promise<number> {
  const opts = flags ? emitOptions(ctx, flags) : {};
  const p = label ? ctx.out.progress(label) : null;
  let r: Reported;
  try {
    r = await work((text) => p?.say(text));
  } finally {
    p?.end();
  }
  return emitReport(ctx.out, r.report, ctx.cwd, { ...opts, human: r.human, ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}) });
}

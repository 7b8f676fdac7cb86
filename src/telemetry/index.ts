/**
 * The telemetry a run sends after its report is complete: `--otlp [URL]` (a trace per cold start) and
 * `--prometheus FILE` (the node-exporter textfile). Neither can change the verdict or the exit code: a failure comes
 * back as one warning line.
 */
import { resolve } from 'node:path';
import type { Report } from '../core/report.js';
import { exportOtlp, otlpTarget } from './otlp.js';
import { writePrometheus } from './prometheus.js';

type Env = Record<string, string | undefined>;

export interface TelemetryFlags {
  /** `--otlp` alone is `true`: the endpoint then comes from the standard variables. */
  otlp?: string | boolean;
  prometheus?: string;
}

/** What the report's last step runs; resolves to the warnings to print (none when everything was sent). */
export type TelemetryHook = (report: Report) => Promise<string[]>;

export function telemetryHook(flags: TelemetryFlags, env: Env, cwd: string): TelemetryHook | undefined {
  if (!flags.otlp && !flags.prometheus) return undefined;
  return async (report) => {
    const warnings: string[] = [];
    if (flags.prometheus) {
      const path = resolve(cwd, flags.prometheus);
      try {
        writePrometheus(path, report);
      } catch (e) {
        warnings.push(`--prometheus: could not write ${path} (${(e as Error).message}); the result above stands`);
      }
    }
    if (flags.otlp) {
      const r = await exportOtlp(report, otlpTarget(flags.otlp, env), env);
      if (!r.ok) warnings.push(`--otlp: the trace was not exported to ${r.url} (${r.reason}); the result above stands`);
    }
    return warnings;
  };
}

/**
 * `--otlp [URL]`: the report as one OpenTelemetry trace per cold start, sent over OTLP/HTTP with protobuf through
 * the OpenTelemetry JS SDK and its exporter (no hand-written wire format). Where it goes and what it carries follow
 * the standard variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces),
 * OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES (`k8s.pod.name=…`, set by the Downward API). An export that fails never changes the
 * command's verdict: it is said once, as a warning.
 */
import { hostname, arch, type } from 'node:os';
import { epochSeconds } from '../core/clock.js';
import type { Report } from '../core/report.js';
import { version } from '../core/version.js';
import { reportSpans, type Attrs, type SpanNode } from './spans.js';

type Env = Record<string, string | undefined>;

export interface OtlpTarget {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
}

/** `k=v,k2=v2` with percent-encoded values (the W3C baggage form both variables use); malformed pairs are skipped. */
export function parseKeyValues(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (text ?? '').split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    let v = part.slice(i + 1).trim();
    try {
      v = decodeURIComponent(v);
    } catch {
      /* kept as written */
    }
    if (k) out[k] = v;
  }
  return out;
}

/** Where the trace goes: the flag's URL, else the standard variables, else the collector's default on this host. */
export function otlpTarget(flag: string | true, env: Env): OtlpTarget {
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, '');
  const url = typeof flag === 'string' && flag ? flag : (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (base ? `${base}/v1/traces` : 'http://localhost:4318/v1/traces'));
  const timeout = Number(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT ?? env.OTEL_EXPORTER_OTLP_TIMEOUT);
  return {
    url,
    headers: { ...parseKeyValues(env.OTEL_EXPORTER_OTLP_HEADERS), ...parseKeyValues(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS) },
    timeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 10_000,
  };
}

/**
 * Resource attributes: semantic conventions where they exist (`service.*`, `host.*`, `os.type`, `container.*` and
 * whatever OTEL_RESOURCE_ATTRIBUTES brings: `k8s.*`), `coldstart.*` for the GPU, driver and model.
 */
export function resourceAttributes(report: Report, env: Env): Attrs {
  const a: Attrs = { 'service.name': env.OTEL_SERVICE_NAME || 'coldstart', 'service.version': version, 'host.name': hostname(), 'host.arch': arch(), 'os.type': type().toLowerCase() };
  const t = report.target ?? {};
  for (const [k, v] of [
    ['coldstart.model', t.name],
    ['coldstart.model.repo', t.repo],
    ['coldstart.model.bytes', t.bytes],
    ['container.image.name', t.image],
  ] as const) {
    if (typeof v === 'string' || typeof v === 'number') a[k] = v;
  }
  const d = (report.details ?? {}) as { cuda?: { devices?: Array<{ name?: string }>; driverVersion?: unknown } };
  const gpu = d.cuda?.devices?.[0]?.name;
  if (gpu) a['coldstart.gpu.name'] = gpu;
  if (typeof d.cuda?.driverVersion === 'number' || typeof d.cuda?.driverVersion === 'string') a['coldstart.gpu.driver'] = d.cuda.driverVersion;
  return { ...a, ...parseKeyValues(env.OTEL_RESOURCE_ATTRIBUTES) };
}

export type ExportOutcome = { ok: true; spans: number; url: string } | { ok: false; url: string; reason: string };

/** Sends the report's spans in one OTLP/HTTP request. Never throws: a failure comes back as `{ ok: false, reason }`. */
export async function exportOtlp(report: Report, target: OtlpTarget, env: Env, endMs = epochSeconds() * 1000): Promise<ExportOutcome> {
  try {
    const [{ TracerProvider, SimpleSpanProcessor, InMemorySpanExporter }, { OTLPTraceExporter }, { resourceFromAttributes }, api] = await Promise.all([
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/exporter-trace-otlp-proto'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/api'),
    ]);
    const memory = new InMemorySpanExporter();
    const provider = new TracerProvider({ resource: resourceFromAttributes(resourceAttributes(report, env)), spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
    const tracer = provider.getTracer('coldstart', version);
    const emit = (n: SpanNode, parent?: ReturnType<typeof tracer.startSpan>) => {
      const ctx = parent ? api.trace.setSpan(api.context.active(), parent) : api.ROOT_CONTEXT;
      const span = tracer.startSpan(n.name, { startTime: n.startMs, attributes: n.attributes }, ctx);
      if (n.error) span.setStatus({ code: api.SpanStatusCode.ERROR, message: n.error });
      for (const c of n.children) emit(c, span);
      span.end(n.endMs);
    };
    for (const root of reportSpans(report, {}, endMs)) emit(root);
    const spans = memory.getFinishedSpans();
    const exporter = new OTLPTraceExporter({ url: target.url, headers: target.headers, timeoutMillis: target.timeoutMs });
    const result = await new Promise<{ code: number; error?: Error }>((resolve) => exporter.export(spans, resolve));
    await exporter.shutdown().catch(() => undefined);
    await provider.shutdown().catch(() => undefined);
    if (result.code !== 0) return { ok: false, url: target.url, reason: result.error?.message?.split('\n')[0] ?? 'the collector did not accept it' };
    return { ok: true, spans: spans.length, url: target.url };
  } catch (e) {
    return { ok: false, url: target.url, reason: (e as Error)?.message?.split('\n')[0] ?? String(e) };
  }
}

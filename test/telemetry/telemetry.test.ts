/**
 * --otlp and --prometheus, checked with the real decoders: the OTLP body is parsed with OpenTelemetry's own protobuf
 * definitions (opentelemetry-proto, in the pinned venv) and the textfile with prometheus_client's parser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { peerPython } from '../helpers/python.js';
import { checkTrace, decodeOtlp, decodeProm, startCollector, type Collector } from '../helpers/otlp-collector.js';
import { FAKE_VLLM, freePort } from '../profile/helpers.js';

const py = peerPython();
const tmp = mkdtempSync(join(tmpdir(), 'cs-telemetry-'));
// A 4 MiB rate probe: what is checked is what the exporters send, not the probe's size.
const env = { COLDSTART_CACHE: join(tmp, 'cache'), COLDSTART_PYTHON: py ?? undefined, NO_COLOR: '1', COLDSTART_PROBE_BYTES: String(4 << 20) };

let collector: Collector;
let endpoint = '';
let received: Collector['received'];
beforeAll(async () => {
  collector = await startCollector();
  endpoint = collector.endpoint;
  received = collector.received;
});
afterAll(() => collector.close());

interface Phase {
  name: string;
  status: string;
  seconds: number | null;
  reason?: string;
  notApplicable?: boolean;
  floor?: { seconds: number; source: string } | null;
  steps: Array<{ name: string; seconds: number }>;
}

describe.skipIf(!py)('--otlp: one trace per cold start, decoded with opentelemetry-proto', () => {
  it('a span per phase and per step under one root, durations equal to the JSON report, floors and reasons as attributes, the standard variables honoured', async () => {
    received.length = 0;
    const r = await runCli(['profile', '--framework', 'safetensors', '--only', 'gpu-load', '--json', '--otlp'], {
      env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: `${endpoint}/`, OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=s%3Dcret', OTEL_SERVICE_NAME: 'inference-a', OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=llama-0,k8s.namespace.name=serving' },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/--otlp/);
    const doc = JSON.parse(r.stdout) as { phases: Phase[]; total: { seconds: number | null } };
    expect(received).toHaveLength(1);
    expect(received[0]!.url).toBe('/v1/traces');
    expect(received[0]!.headers['content-type']).toBe('application/x-protobuf');
    expect(received[0]!.headers['x-collector-token']).toBe('s=cret');
    const spans = decodeOtlp(py!, received[0]!.body, join(tmp, 'otlp.bin'));
    const root = checkTrace(expect, spans, doc, 'profile');
    expect(root.resource).toMatchObject({ 'service.name': 'inference-a', 'k8s.pod.name': 'llama-0', 'k8s.namespace.name': 'serving', 'coldstart.model': 'demo' });
    expect(typeof root.resource['host.name']).toBe('string');
    expect(doc.phases.find((p) => p.name === 'gpu-load')!.status).toBe('ok');
    expect(spans.some((x) => x.attributes['coldstart.floor.seconds'] !== undefined)).toBe(true);
    // The root lasts as long as the phases together (the report's total when complete).
    const sum = doc.phases.reduce((a, p) => a + ((p.status === 'ok' || p.status === 'estimated') && p.seconds !== null ? p.seconds : 0), 0);
    expect(Math.abs(root.seconds - sum)).toBeLessThan(1e-5);
    if (doc.total.seconds !== null) expect(root.attributes['coldstart.total.seconds']).toBeCloseTo(doc.total.seconds, 9);
  });

  it('warmup sends its trace too: one root, the warmup phase under it', async () => {
    received.length = 0;
    const onnx = fileURLToPath(new URL('../../fixtures/onnx/mlp.onnx', import.meta.url));
    const r = await runCli(['warmup', onnx, '--json', '--cache-dir', join(tmp, 'ort'), '--otlp', `${endpoint}/v1/traces`], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { phases: Phase[] };
    expect(received).toHaveLength(1);
    const spans = decodeOtlp(py!, received[0]!.body, join(tmp, 'otlp-warmup.bin'));
    checkTrace(expect, spans, doc, 'warmup');
    expect(doc.phases.find((p) => p.name === 'warmup')!.status).toBe('ok');
  });

  it('optimize sends its trace: the optimized start\'s phases under one root, as its JSON report has them; the textfile too', async () => {
    received.length = 0;
    const port = await freePort();
    const prom = join(tmp, 'optimize.prom');
    const r = await runCli(['--json', 'optimize', '--persist', join(tmp, 'opt'), '--ready-url', `http://127.0.0.1:${port}/health`, '--otlp', `${endpoint}/v1/traces`, '--prometheus', prom, '--', process.execPath, FAKE_VLLM, String(port), '--compile-cache'], { env: { ...env, FAKE_VLLM_COMPILE_MS: '300' }, cwd: tmp });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/--otlp|--prometheus/);
    const doc = JSON.parse(r.stdout) as { phases: Phase[] };
    expect(received).toHaveLength(1);
    const root = checkTrace(expect, decodeOtlp(py!, received[0]!.body, join(tmp, 'otlp-optimize.bin')), doc, 'optimize');
    expect(root.attributes['coldstart.schema']).toBe('coldstart/optimize@1');
    const fams = decodeProm<Array<{ name: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }>>(py!, prom);
    const counts = fams.find((f) => f.name === 'coldstart_phase_seconds')!.samples.filter((x) => x.name === 'coldstart_phase_seconds_count');
    const measured = doc.phases.filter((p) => p.status === 'ok' && p.seconds !== null).map((p) => p.name);
    expect(measured.length).toBeGreaterThan(0);
    for (const name of measured) expect(counts.find((c) => c.labels.phase === name && c.labels.command === 'optimize'), name).toMatchObject({ value: 1 });
  }, 120_000);

  it('with the collector down the exit code and the output are those of a run without --otlp, plus one warning', async () => {
    const dead = 'http://127.0.0.1:9/v1/traces';
    const ok = await runCli(['profile', '--only', 'gpu-load', '--json', '--otlp', dead], { env });
    const okPlain = await runCli(['profile', '--only', 'gpu-load', '--json'], { env });
    expect(ok.code).toBe(okPlain.code);
    const warnings = ok.stderr.split('\n').filter((l) => /--otlp/.test(l));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not exported to http:\/\/127\.0\.0\.1:9\/v1\/traces .*the result above stands/);
    const shape = (s: string) => (JSON.parse(s) as { phases: Phase[] }).phases.map((p) => [p.name, p.status]);
    expect(shape(ok.stdout)).toEqual(shape(okPlain.stdout));
  });
});

describe.skipIf(!py)('--prometheus: the node-exporter textfile, parsed by prometheus_client', () => {
  it('a histogram per phase that adds up across runs, the floor as a gauge, unmeasured phases never observed', async () => {
    const file = join(tmp, 'coldstart.prom');
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['profile', '--framework', 'safetensors', '--only', 'gpu-load', '--prometheus', file], { env });
      expect(r.code, r.stderr).toBe(0);
    }
    const fams = decodeProm<Array<{ name: string; type: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }>>(py!, file);
    const fam = (n: string) => fams.find((f) => f.name === n)!;
    expect(fam('coldstart_phase_seconds').type).toBe('histogram');
    const count = fam('coldstart_phase_seconds').samples.find((s) => s.name === 'coldstart_phase_seconds_count' && s.labels.phase === 'gpu-load')!;
    expect(count.value).toBe(2);
    const inf = fam('coldstart_phase_seconds').samples.find((s) => s.name === 'coldstart_phase_seconds_bucket' && s.labels.phase === 'gpu-load' && s.labels.le === '+Inf')!;
    expect(inf.value).toBe(2);
    // Left out by --only: no observation, and the gauge says why.
    expect(fam('coldstart_phase_seconds').samples.some((s) => s.labels.phase === 'container')).toBe(false);
    const measured = fam('coldstart_phase_measured').samples;
    expect(measured.find((s) => s.labels.phase === 'gpu-load')!.value).toBe(1);
    expect(measured.find((s) => s.labels.phase === 'container')).toMatchObject({ value: 0, labels: { state: 'left-out' } });
    expect(fam('coldstart_phase_floor_seconds').samples.find((s) => s.labels.phase === 'gpu-load')!.value).toBeGreaterThan(0);
    expect(readFileSync(file, 'utf8')).toMatch(/\n$/);
  });

  it('--prometheus naming the model being profiled is refused before anything runs', async () => {
    const w = join(tmp, 'w.safetensors');
    writeFileSync(w, 'x');
    const r = await runCli(['profile', w, '--prometheus', w, '--json'], { env });
    expect(r.code).toBe(2);
    expect(readFileSync(w, 'utf8')).toBe('x');
  });
});

describe('telemetry/spans: a report as spans', () => {
  it('one root per measured run, each phase its run\'s seconds, back to back, ending at the export', async () => {
    const { reportSpans } = await import('../../src/telemetry/spans.js');
    const { newReport } = await import('../../src/core/report.js');
    const report = newReport('profile');
    report.phases = [
      { name: 'imports', status: 'ok', seconds: 2, steps: [], metrics: {}, share: null },
      { name: 'gpu-load', status: 'ok', seconds: 5, steps: [], metrics: {}, share: null },
    ];
    report.runs = { count: 2, warmup: 0, samples: [{ index: 1, total: 6, phases: { imports: 2, 'gpu-load': 4 } }, { index: 2, total: 8, phases: { imports: 2, 'gpu-load': 6 } }] };
    const roots = reportSpans(report, {}, 100_000);
    expect(roots.map((r) => [(r.endMs - r.startMs) / 1000, r.attributes['coldstart.run'], r.attributes['coldstart.total.seconds']])).toEqual([
      [6, 1, 6],
      [8, 2, 8],
    ]);
    expect(roots[1]!.endMs).toBe(100_000);
    expect(roots[0]!.endMs).toBe(roots[1]!.startMs);
    expect(roots[1]!.children.map((c) => (c.endMs - c.startMs) / 1000)).toEqual([2, 6]);
  });

  it('prometheus label values are escaped as the text format says', async () => {
    const { escapeLabel } = await import('../../src/telemetry/prometheus.js');
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });
});

describe('docs/examples/grafana-coldstart.json', () => {
  it('queries only metrics the textfile has', async () => {
    const { prometheusText } = await import('../../src/telemetry/prometheus.js');
    const { newReport } = await import('../../src/core/report.js');
    const report = newReport('profile');
    report.phases = [{ name: 'gpu-load', status: 'ok', seconds: 1.5, steps: [], metrics: {}, share: null, floor: { seconds: 0.3, source: 'native loader' } }];
    report.total = { seconds: 1.5, complete: true, missing: [] };
    const written = new Set([...prometheusText(report).matchAll(/^(coldstart_\w+)\{/gm)].map((m) => m[1]!));
    const dashboard = readFileSync(fileURLToPath(new URL('../../docs/examples/grafana-coldstart.json', import.meta.url)), 'utf8');
    const queried = new Set([...dashboard.matchAll(/\b(coldstart_[a-z_]+)\b/g)].map((m) => m[1]!));
    expect(queried.size).toBeGreaterThan(3);
    for (const q of queried) expect(written, q).toContain(q);
  });
});

"""Decodes what coldstart sent or wrote with the real definitions, for test/telemetry/telemetry.test.ts.

decode.py otlp BODY   an OTLP/HTTP protobuf ExportTraceServiceRequest -> JSON (resource attributes, spans)
decode.py prom FILE   a node-exporter textfile, parsed by prometheus_client -> JSON (families and samples)
"""

import json
import sys


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def otlp(path):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    req = trace_service_pb2.ExportTraceServiceRequest()
    with open(path, "rb") as f:
        req.ParseFromString(f.read())
    out = []
    for rs in req.resource_spans:
        resource = {a.key: value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "resource": resource,
                        "scope": ss.scope.name,
                        "name": s.name,
                        "traceId": s.trace_id.hex(),
                        "spanId": s.span_id.hex(),
                        "parentSpanId": s.parent_span_id.hex(),
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "seconds": (s.end_time_unix_nano - s.start_time_unix_nano) / 1e9,
                        "status": s.status.code,
                        "attributes": {a.key: value(a.value) for a in s.attributes},
                    }
                )
    return out


def prom(path):
    from prometheus_client.parser import text_string_to_metric_families

    with open(path) as f:
        text = f.read()
    return [
        {
            "name": fam.name,
            "type": fam.type,
            "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples],
        }
        for fam in text_string_to_metric_families(text)
    ]


if __name__ == "__main__":
    mode, path = sys.argv[1], sys.argv[2]
    print(json.dumps(otlp(path) if mode == "otlp" else prom(path)))

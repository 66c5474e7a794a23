"""Traces and JSON logs shared by the gateway and the replicas (OpenTelemetry SDK, structlog).

`tracing` sets up a tracer provider whose trace ids follow request ids, exporting over OTLP when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set and to JSON-lines files under `$POLYCLOUD_HOME/traces/` otherwise;
`logs` writes JSON log lines from a background thread. Neither blocks the request path.
"""

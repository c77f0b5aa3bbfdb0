package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orders-oss/orders/internal/telemetry"
	"github.com/orders-oss/orders/internal/telemetry/telemetrytest"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigured(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want bool
	}{
		{nil, false}, // nothing configured: nothing sent
		{[]string{"OTEL_TRACES_EXPORTER", "otlp"}, true},
		{[]string{"OTEL_TRACES_EXPORTER", "console"}, true},
		{[]string{"OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}, false},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"}, true},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces"}, true},
		{[]string{"OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "otlp"}, false},
	} {
		if got := telemetry.Configured(env(tt.env...)); got != tt.want {
			t.Errorf("Configured(%v) = %v, want %v", tt.env, got, tt.want)
		}
	}
}

func TestSetup(t *testing.T) {
	// Off: no provider installed, nothing to flush.
	shutdown, err := telemetry.Setup(t.Context(), "command", env())
	if err != nil || telemetry.Enabled() {
		t.Fatalf("Setup without OTEL_* = %v, enabled %v; want off", err, telemetry.Enabled())
	}
	if err := shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// An exporter orders does not know is refused by name.
	if _, err := telemetry.Setup(t.Context(), "command", env("OTEL_TRACES_EXPORTER", "zipkin")); err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER=zipkin") {
		t.Errorf("Setup with zipkin = %v, want an error naming it", err)
	}
	if telemetry.Enabled() {
		t.Error("tracing is on after a refused setup")
	}
	// An exporter named: tracing is on, and spans get the service's name.
	t.Cleanup(func() {
		telemetry.Off()
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
	shutdown, err = telemetry.Setup(t.Context(), "command", env("OTEL_TRACES_EXPORTER", "console"))
	if err != nil || !telemetry.Enabled() {
		t.Fatalf("Setup with the console exporter = %v, enabled %v", err, telemetry.Enabled())
	}
	_, span := telemetry.Tracer().Start(t.Context(), "x")
	ro, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		t.Fatalf("span %T is not the SDK's", span)
	}
	if name, _ := ro.Resource().Set().Value("service.name"); name.AsString() != "command" {
		t.Errorf("service.name = %q, want command", name.AsString())
	}
	span.End()
	if err := shutdown(t.Context()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	if got := telemetry.Traceparent(t.Context()); got != "" {
		t.Errorf("Traceparent with tracing off = %q, want none", got)
	}
	rec := telemetrytest.Record(t)
	ctx, span := telemetry.Tracer().Start(context.Background(), "append")
	tp := telemetry.Traceparent(ctx)
	span.End()
	if !strings.HasPrefix(tp, "00-"+span.SpanContext().TraceID().String()+"-"+span.SpanContext().SpanID().String()) {
		t.Fatalf("Traceparent = %q, want the span's ids", tp)
	}
	// The relay: the stored traceparent becomes the parent of its span, whose context goes into the
	// record's headers; the projector reads it back from there.
	pctx := telemetry.WithTraceparent(context.Background(), tp)
	pctx, publish := telemetry.Tracer().Start(pctx, "publish")
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "type", Value: []byte("OrderPlaced")}, {Key: "traceparent", Value: []byte("stale")}}}
	telemetry.InjectRecord(pctx, r)
	publish.End()
	var n int
	for _, h := range r.Headers {
		if h.Key == "traceparent" {
			n++
		}
	}
	if n != 1 || (telemetry.RecordCarrier{Record: r}).Get("type") != "OrderPlaced" {
		t.Errorf("headers after inject = %v, want one traceparent and the others kept", r.Headers)
	}
	got := trace.SpanContextFromContext(telemetry.RecordContext(context.Background(), r))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != publish.SpanContext().SpanID() || !got.IsRemote() {
		t.Errorf("context from the record = %v, want the publish span of the same trace", got)
	}
	spans := telemetrytest.Trace(rec, span.SpanContext().TraceID())
	if len(spans) != 2 || spans[1].Parent().SpanID() != span.SpanContext().SpanID() {
		t.Errorf("trace = %v, want append then publish as its child", spans)
	}
	// A malformed traceparent is ignored.
	if sc := trace.SpanContextFromContext(telemetry.WithTraceparent(context.Background(), "00-zz")); sc.IsValid() {
		t.Errorf("malformed traceparent gave %v", sc)
	}
}

func TestRegisterRuntime(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := telemetry.RegisterRuntime(reg, "query"); err != nil {
		t.Fatal(err)
	}
	if err := telemetry.RegisterRuntime(reg, "query"); err != nil {
		t.Fatalf("registering twice: %v", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"orders_build_info", "go_goroutines", "process_resident_memory_bytes"} {
		if !names[want] {
			t.Errorf("%s not registered", want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "orders_build_info"); err != nil || n != 1 {
		t.Errorf("orders_build_info series = %d (%v), want 1", n, err)
	}
	const want = `service="query"`
	for _, f := range families {
		if f.GetName() == "orders_build_info" {
			m := f.GetMetric()[0]
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] != "query" || labels["version"] == "" || labels["commit"] == "" || !strings.HasPrefix(labels["go_version"], "go") || m.GetGauge().GetValue() != 1 {
				t.Errorf("orders_build_info = %v %v, want 1 with %s, version, commit and Go version", labels, m.GetGauge().GetValue(), want)
			}
		}
	}
}

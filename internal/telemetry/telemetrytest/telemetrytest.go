// Package telemetrytest records the spans orders makes, in memory, for tests.
package telemetrytest

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/orders-oss/orders/internal/telemetry"
)

// Record turns tracing on for the rest of the test with every span kept in memory (sampled always), and
// off again when the test ends. Tracing is process-wide: a test that records must not run in parallel
// with another that records.
func Record(t testing.TB) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	telemetry.Use(tp)
	t.Cleanup(func() {
		telemetry.Off()
		otel.SetTracerProvider(noop.NewTracerProvider())
		_ = tp.Shutdown(t.Context())
	})
	return rec
}

// Trace returns the ended spans of one trace, in the order they ended.
func Trace(rec *tracetest.SpanRecorder, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

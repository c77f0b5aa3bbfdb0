// Package telemetry is how orders reports on itself: OpenTelemetry traces that follow an order's event
// from the command API through the outbox and the Kafka hop into each projector's write (the W3C
// traceparent rides in the outbox row and then in the record's headers), and the Prometheus metrics
// every service serves (its build, the Go runtime and process, its HTTP requests). docs/observability.md
// lists every span and metric.
//
// Tracing is configured by the standard OTEL_* environment variables and is off unless an exporter is
// named: with tracing off nothing is sent, nothing is propagated, and the hot paths do no tracing work.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/buildinfo"
)

// Scope is the instrumentation scope of every span orders makes.
const Scope = "github.com/orders-oss/orders"

var (
	enabled    atomic.Bool
	propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
)

// Enabled reports whether spans are recorded and trace context propagated (an exporter is configured,
// or a test installed a provider).
func Enabled() bool { return enabled.Load() }

// Tracer is the tracer of orders' spans (the global provider's: a no-op one while tracing is off).
func Tracer() trace.Tracer { return otel.GetTracerProvider().Tracer(Scope) }

// Propagator carries trace context in HTTP headers, outbox rows and Kafka record headers: W3C Trace
// Context and Baggage.
func Propagator() propagation.TextMapPropagator { return propagator }

// Use installs tp as the provider of every span and turns tracing on (Setup does it from the
// environment; tests do it with an in-memory exporter).
func Use(tp trace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	enabled.Store(true)
}

// Configured reports whether the environment asks for traces: OTEL_TRACES_EXPORTER names an exporter
// other than none, or an OTLP endpoint is set (then OTLP is the exporter). OTEL_SDK_DISABLED=true wins.
func Configured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" {
		return e != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup turns tracing on when the environment asks for it (Configured): the exporter of
// OTEL_TRACES_EXPORTER (otlp, console; OTLP over http/protobuf unless OTEL_EXPORTER_OTLP_PROTOCOL says
// grpc), the sampler of OTEL_TRACES_SAMPLER (parent-based, always on, by default), and a resource with
// service.name = service unless OTEL_SERVICE_NAME says otherwise, plus OTEL_RESOURCE_ATTRIBUTES. The
// returned shutdown flushes the spans still buffered; call it when the program ends. With tracing off,
// shutdown does nothing.
func Setup(ctx context.Context, service string, getenv func(string) string) (shutdown func(context.Context) error, err error) {
	noop := func(context.Context) error { return nil }
	if !Configured(getenv) {
		return noop, nil
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" && e != "console" {
		return noop, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: orders knows otlp, console and none", e)
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return noop, fmt.Errorf("trace exporter: %w", err)
	}
	info := buildinfo.Read()
	// The environment (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) overrides the defaults given here.
	res, err := resource.Merge(
		resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceVersion(info.Version),
			semconv.ServiceNamespace("orders")),
		resource.Environment())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return noop, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Use(tp)
	return tp.Shutdown, nil
}

// Off turns tracing off again (tests; the global provider stays until replaced).
func Off() { enabled.Store(false) }

package telemetry

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
)

// Traceparent is the W3C traceparent of ctx's span, as the outbox row keeps it for the relay: "" while
// tracing is off or ctx has no span.
func Traceparent(ctx context.Context) string {
	if !Enabled() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceparent returns ctx with the remote span of a stored traceparent as its parent ("" or a
// malformed value: ctx as it is).
func WithTraceparent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" || !Enabled() {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// RecordCarrier carries trace context in a Kafka record's headers (traceparent, tracestate, baggage).
type RecordCarrier struct{ Record *kgo.Record }

var _ propagation.TextMapCarrier = RecordCarrier{}

// Get returns the value of the record's last header named key.
func (c RecordCarrier) Get(key string) string {
	for i := len(c.Record.Headers) - 1; i >= 0; i-- {
		if c.Record.Headers[i].Key == key {
			return string(c.Record.Headers[i].Value)
		}
	}
	return ""
}

// Set replaces the headers named key with one of value.
func (c RecordCarrier) Set(key, value string) {
	h := c.Record.Headers[:0:0]
	for _, rh := range c.Record.Headers {
		if rh.Key != key {
			h = append(h, rh)
		}
	}
	c.Record.Headers = append(h, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys lists the record's header names.
func (c RecordCarrier) Keys() []string {
	keys := make([]string, 0, len(c.Record.Headers))
	for _, h := range c.Record.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

// InjectRecord writes ctx's trace context into r's headers (nothing while tracing is off).
func InjectRecord(ctx context.Context, r *kgo.Record) {
	if Enabled() {
		Propagator().Inject(ctx, RecordCarrier{r})
	}
}

// RecordContext returns ctx with the trace context r's headers carry (ctx while tracing is off).
func RecordContext(ctx context.Context, r *kgo.Record) context.Context {
	if !Enabled() {
		return ctx
	}
	return Propagator().Extract(ctx, RecordCarrier{r})
}

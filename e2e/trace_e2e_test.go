//go:build integration

package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/telemetry/telemetrytest"
)

// TestOneTraceFromPostToBothProjectors follows POST /orders through the real Postgres, Kafka and
// OpenSearch: the request's server span, the append under it, the relay's publish under the append
// (its context carried by the outbox row), and each projector's write under the publish (carried by
// the Kafka record's headers) are one trace, recorded by an in-memory exporter.
func TestOneTraceFromPostToBothProjectors(t *testing.T) {
	rec := telemetrytest.Record(t) // not parallel: tracing is process-wide
	p := startPipeline(t, true)
	bearer := p.issuer.Bearer(t, authtest.Staff)
	api, topic := p.command, p.topic
	groups := map[string]bool{p.groups[0]: true, p.groups[1]: true}

	placed := call(t, bearer, "POST", api.URL+"/orders", fmt.Sprintf(placeBody, 1, "Ada Lovelace", 1))
	var server sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "POST /orders" && s.SpanKind() == trace.SpanKindServer {
			server = s
		}
	}
	if server == nil {
		t.Fatal("no server span POST /orders")
	}
	id := server.SpanContext().TraceID()

	// Wait for both projectors' spans of that trace.
	var spans []sdktrace.ReadOnlySpan
	processed := map[string]sdktrace.ReadOnlySpan{}
	for deadline := time.Now().Add(60 * time.Second); len(processed) < len(groups); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the trace has %d spans, projectors %v; want both projectors' writes", len(spans), processed)
		}
		spans = telemetrytest.Trace(rec, id)
		for _, s := range spans {
			if s.Name() == "process "+topic {
				processed[attr(s, "messaging.consumer.group.name")] = s
			}
		}
	}
	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	appendSpan := only(t, byName, "eventstore append")
	publish := only(t, byName, topic+" publish")
	if appendSpan.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Errorf("the append's parent is %v, want the request's span", appendSpan.Parent().SpanID())
	}
	if attr(appendSpan, "orders.order_id") != placed.ID {
		t.Errorf("the append span names order %q, want %s", attr(appendSpan, "orders.order_id"), placed.ID)
	}
	if publish.Parent().SpanID() != appendSpan.SpanContext().SpanID() || publish.SpanKind() != trace.SpanKindProducer {
		t.Errorf("publish: kind %v parent %v, want a producer span under the append", publish.SpanKind(), publish.Parent().SpanID())
	}
	for group, s := range processed {
		if s.Parent().SpanID() != publish.SpanContext().SpanID() || s.SpanKind() != trace.SpanKindConsumer || !s.Parent().IsRemote() {
			t.Errorf("%s: kind %v parent %v, want a consumer span under the publish, across Kafka", group, s.SpanKind(), s.Parent())
		}
		if c := s.Status().Code; c != codes.Unset && c != codes.Ok {
			t.Errorf("%s: status %v", group, s.Status())
		}
		if _, ok := groups[group]; !ok {
			t.Errorf("a process span of group %q, not one of the projectors'", group)
		}
		if s.StartTime().Before(publish.StartTime()) {
			t.Errorf("%s: the write began before the publish", group)
		}
	}
}

func only(t *testing.T, byName map[string][]sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	if n := len(byName[name]); n != 1 {
		names := []string{}
		for k, v := range byName {
			names = append(names, fmt.Sprintf("%s×%d", k, len(v)))
		}
		t.Fatalf("%d spans named %q in the trace, want 1; the trace has %v", n, name, names)
	}
	return byName[name][0]
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

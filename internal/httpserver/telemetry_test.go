package httpserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/telemetry/telemetrytest"
)

// openAuth lets every request through (the chassis' own routes are what these tests look at).
type openAuth struct{}

func (openAuth) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
}
func (openAuth) Ready(context.Context) error { return nil }

func newTestServer(t *testing.T) *Server {
	srv := New(Config{Service: "query", Auth: openAuth{}})
	srv.GET("/orders/:id", func(c echo.Context) error { return c.String(http.StatusOK, c.Param("id")) })
	srv.GET("/boom", func(c echo.Context) error { return problem.New(http.StatusServiceUnavailable, "unavailable", "down") })
	return srv
}

func serve(srv http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	srv.ServeHTTP(rec, req)
	return rec
}

func TestRequestMetrics(t *testing.T) {
	srv := newTestServer(t)
	serve(srv, "GET", "/orders/a", nil)
	serve(srv, "GET", "/orders/b", nil)
	serve(srv, "GET", "/boom", nil)
	serve(srv, "GET", "/wp-admin/setup.php", nil)
	serve(srv, "GET", "/healthz", nil)
	body := serve(srv, "GET", "/metrics", nil).Body.String()
	for _, want := range []string{
		// one series for every order id, not one per id
		`http_requests_total{code="200",method="GET",route="/orders/:id",service="query"} 2`,
		`http_requests_total{code="503",method="GET",route="/boom",service="query"} 1`,
		`http_requests_total{code="404",method="GET",route="unmatched",service="query"} 1`,
		`http_request_duration_seconds_count{code="200",method="GET",route="/orders/:id",service="query"} 2`,
		`orders_build_info{commit=`, `go_goroutines `, `process_cpu_seconds_total `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "wp-admin") {
		t.Error("/metrics labels a request with a path no route has")
	}
}

func TestServerSpans(t *testing.T) {
	srv := newTestServer(t)
	// Off: no span, no trace id in the answer's log.
	serve(srv, "GET", "/orders/a", nil)
	rec := telemetrytest.Record(t)
	if len(rec.Ended()) != 0 {
		t.Fatal("spans recorded before tracing was on")
	}
	caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled})
	serve(srv, "GET", "/orders/a", http.Header{"Traceparent": {"00-" + caller.TraceID().String() + "-" + caller.SpanID().String() + "-01"}})
	serve(srv, "GET", "/boom", nil)
	serve(srv, "GET", "/readyz", nil)
	ended := rec.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want 2 (probes are not traced)", len(ended))
	}
	get := ended[0]
	if get.Name() != "GET /orders/:id" || get.SpanKind() != trace.SpanKindServer || get.Parent().SpanID() != caller.SpanID() || get.SpanContext().TraceID() != caller.TraceID() {
		t.Errorf("span %q kind %v parent %v, want the server span GET /orders/:id as the caller's child", get.Name(), get.SpanKind(), get.Parent())
	}
	if v := attr(get, "http.response.status_code"); v.AsInt64() != 200 {
		t.Errorf("status attribute = %v", v)
	}
	if boom := ended[1]; boom.Status().Code != codes.Error || attr(boom, "http.response.status_code").AsInt64() != 503 {
		t.Errorf("a 503's span has status %v, want an error with the code", boom.Status())
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/orders-oss/orders/internal/telemetry"
)

type requestIDKey struct{}

// RequestID returns the id the Common middleware gave the request ("" outside a request).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Common is the middleware every orders API uses, outermost first: panic recovery, a server-made request
// id (X-Request-ID in the answer; an id sent by the client is not trusted as a causation id), a server
// span per request when tracing is on (its parent from the caller's traceparent), one JSON log line per
// request (debug level for successful probes and scrapes) with its trace id, the request metrics when m
// is set, and the body limit (413 above it).
func Common(log *slog.Logger, bodyLimit string, m *HTTPMetrics) []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.ErrorContext(c.Request().Context(), "panic", "error", err.Error(), "stack", string(stack))
			return err
		}}),
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				id := uuid.Must(uuid.NewV7()).String()
				c.Response().Header().Set(echo.HeaderXRequestID, id)
				c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), requestIDKey{}, id)))
				return next(c)
			}
		},
		traced,
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				start := time.Now()
				err := next(c)
				if err != nil {
					c.Error(err) // write the answer now so the status below is the one sent
				}
				req, res := c.Request(), c.Response()
				elapsed := time.Since(start)
				m.observe(c, res.Status, elapsed)
				level := slog.LevelInfo
				switch {
				case res.Status >= 500:
					level = slog.LevelError
				case res.Status < 400 && quietRoutes[c.Path()]:
					level = slog.LevelDebug // probes and scrapes every few seconds would drown the log
				}
				attrs := []slog.Attr{slog.String("method", req.Method), slog.String("path", req.URL.Path),
					slog.String("route", c.Path()), slog.Int("status", res.Status),
					slog.Int64("bytes", res.Size), slog.Duration("duration", elapsed),
					slog.String("request_id", RequestID(req.Context()))}
				if sc := trace.SpanContextFromContext(req.Context()); sc.IsValid() {
					attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
				}
				log.LogAttrs(req.Context(), level, "request", attrs...)
				return nil
			}
		},
		middleware.BodyLimit(bodyLimit),
	}
}

// quietRoutes are logged at debug level when they succeed.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// traced runs the request in a server span named after its route ("POST /orders") while tracing is on;
// a caller's traceparent header makes it a child of the caller's span. Probes and scrapes are not traced.
func traced(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !telemetry.Enabled() || quietRoutes[c.Path()] {
			return next(c)
		}
		req := c.Request()
		route := routeLabel(c)
		ctx := telemetry.Propagator().Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := telemetry.Tracer().Start(ctx, req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.HTTPRoute(route),
				semconv.URLPath(req.URL.Path), attribute.String("orders.request_id", RequestID(ctx))))
		defer span.End()
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err) // the answer's status is known only once it is written
		}
		status := c.Response().Status
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		}
		return nil
	}
}

// routeLabel is the request's route template ("/orders/:id"), or "unmatched" when no route's path
// matched. Echo names only registered paths here (a 404 or 405 gets the nearest route's), so the metrics'
// label sets stay bounded whatever paths scanners try.
func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

// HTTPMetrics are a service's request metrics: http_requests_total and
// http_request_duration_seconds, by service, route, method and status code.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	service  string
}

// NewHTTPMetrics registers the request metrics on reg.
func NewHTTPMetrics(reg prometheus.Registerer, service string) (*HTTPMetrics, error) {
	labels := []string{"service", "route", "method", "code"}
	m := &HTTPMetrics{service: service,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total",
			Help: "HTTP requests answered, by service, route template, method and status code."}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer, by service, route template, method and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, labels),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *HTTPMetrics) observe(c echo.Context, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"service": m.service, "route": routeLabel(c), "method": c.Request().Method, "code": strconv.Itoa(status)}
	m.requests.With(l).Inc()
	m.duration.With(l).Observe(elapsed.Seconds())
}

// Package httpserver is the chassis every orders service runs on: an echo instance with problem+json
// errors, the common middleware (request ids, logs, traces, request metrics), /healthz, /readyz and
// /metrics (New); serving it with the timeouts every service uses and a bounded graceful shutdown
// (Server.Run, RunWith); and the process entry point that turns SIGTERM into that shutdown (Main). A
// service's main wires its own routes and workers onto it and nothing else.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/problem"
	"github.com/orders-oss/orders/internal/telemetry"
)

// Timeouts used by every service. Reads are short (bodies are small); writes leave room for the
// read-your-writes wait of the query API.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 15 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	ShutdownTimeout   = 15 * time.Second
)

// DefaultBodyLimit is the largest request body a service accepts unless its Config says otherwise.
const DefaultBodyLimit = "16KB"

// Config is what a service tells the chassis.
type Config struct {
	// Service names the service in its log lines.
	Service string
	Log     *slog.Logger
	// Ready answers /readyz (nil: ready whenever the process runs).
	Ready func(ctx context.Context) error
	// Errors maps the service's own errors to problems; nil for none (every other error is a 500).
	Errors problem.Mapper
	// BodyLimit is the largest request body, e.g. "256KB" (DefaultBodyLimit when empty); above it 413.
	BodyLimit string
	// Metrics is served at /metrics (a new registry when nil), with the request metrics, the build-info
	// gauge and the Go and process collectors added to it (internal/telemetry).
	Metrics *prometheus.Registry
	// Auth authenticates every route but /healthz, /readyz and /metrics (internal/auth.Authenticator).
	// Without it those routes answer 401: no service can serve an unauthenticated API by omission.
	Auth Auth
}

// Auth is what the chassis needs of the authentication: a middleware that authenticates (and
// limits) a request, and whether it is ready to (its verification keys are loaded).
type Auth interface {
	Middleware() echo.MiddlewareFunc
	Ready(ctx context.Context) error
}

// OpenRoutes are served without authentication: probes and the metrics scrape.
var OpenRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Server is a service's HTTP side: an echo instance set up by New. It is an http.Handler.
type Server struct {
	*echo.Echo
	cfg      Config
	draining atomic.Bool
}

// New returns the chassis: problem+json errors (cfg.Errors first), the Common middleware, /healthz,
// /readyz and, with cfg.Metrics, /metrics. The service adds its routes.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyLimit == "" {
		cfg.BodyLimit = DefaultBodyLimit
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if err := telemetry.RegisterRuntime(cfg.Metrics, cfg.Service); err != nil {
		cfg.Log.Warn("runtime metrics not registered", "error", err.Error())
	}
	httpMetrics, err := NewHTTPMetrics(cfg.Metrics, cfg.Service)
	if err != nil {
		// A registry shared by two servers (tests): the first one's metrics count; this one's go unrecorded.
		cfg.Log.Warn("request metrics not registered", "error", err.Error())
	}
	s := &Server{Echo: echo.New(), cfg: cfg}
	s.HideBanner, s.HidePort = true, true
	s.HTTPErrorHandler = problem.Handler(cfg.Log, cfg.Errors)
	s.Use(Common(cfg.Log, cfg.BodyLimit, httpMetrics)...)
	s.Use(authenticate(cfg.Auth))
	s.GET("/healthz", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
	})
	s.GET("/readyz", func(c echo.Context) error {
		if s.draining.Load() {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "shutting down"})
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if cfg.Ready != nil {
			if err := cfg.Ready(ctx); err != nil {
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
			}
		}
		if cfg.Auth != nil {
			if err := cfg.Auth.Ready(ctx); err != nil {
				return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "auth: " + err.Error()})
			}
		}
		return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
	})
	s.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{})))
	return s
}

// authenticate runs a's middleware on every route but the open ones; without a, those routes answer
// 401 (fail closed). Unknown paths are authenticated too, so routes cannot be probed without a token.
func authenticate(a Auth) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		authed := func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="orders"`)
			return problem.New(http.StatusUnauthorized, "unauthenticated", "this service has no authentication configured")
		}
		if a != nil {
			authed = a.Middleware()(next)
		}
		return func(c echo.Context) error {
			if OpenRoutes[c.Path()] {
				return next(c)
			}
			return authed(c)
		}
	}
}

// Routes lists the method and path of every route, for the tests that keep the OpenAPI spec honest.
func (s *Server) Routes() [][2]string {
	var out [][2]string
	for _, r := range s.Echo.Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

// Run listens on l.Addr and serves until ctx ends. Then /readyz answers 503 for l.DrainDelay while
// requests are still served, the listener closes, requests in flight get up to ShutdownTimeout to
// finish, and Run returns. onListen, when not nil, receives the bound address once listening (useful
// with ":0" in tests).
func (s *Server) Run(ctx context.Context, l Listen, onListen func(net.Addr)) error {
	log, addr := s.cfg.Log, l.Addr
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())
	if onListen != nil {
		onListen(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if d := l.DrainDelay; d > 0 {
		log.Info("draining: /readyz answers 503", "for", d.String())
		select {
		case err := <-errc:
			return fmt.Errorf("serve %s: %w", addr, err)
		case <-time.After(d):
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	log.Info("shutting down", "grace", ShutdownTimeout.String())
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}

// RunWith serves s on l while work runs (a projector's consume loop, the relay's publish loop).
// When ctx ends, both stop; when work returns, the server is stopped too, and when the server fails,
// work's context is cancelled. It returns work's error (context cancellation is not one), else the
// server's.
func (s *Server) RunWith(ctx context.Context, l Listen, work func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if serveErr = s.Run(ctx, l, nil); serveErr != nil {
			s.cfg.Log.Error("http server stopped", "error", serveErr.Error())
			cancel() // a worker nobody can probe is stopped rather than left running blind
		}
	}()
	err := work(ctx)
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return serveErr
}

// Logger is a service's logger: one JSON object per line on w, each with the service's name.
func Logger(w io.Writer, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, nil)).With("service", service)
}

// Main is a service's main: it turns tracing on when the OTEL_* environment asks for it
// (telemetry.Setup), calls run with a context that ends on SIGINT or SIGTERM, the process environment
// and stdout, flushes the spans still buffered, and exits 1 with run's error on stderr.
func Main(service string, run func(ctx context.Context, getenv func(string) string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	flush, err := telemetry.Setup(ctx, service, os.Getenv)
	if err == nil {
		err = run(ctx, os.Getenv, os.Stdout)
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ferr := flush(fctx); ferr != nil {
			fmt.Fprintln(os.Stderr, service+": flush traces:", ferr)
		}
		cancel()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, service+":", err)
		os.Exit(1)
	}
}

// Listen is what every service reads about its HTTP side (docs/configuration.md).
type Listen struct {
	Addr string // HTTP_ADDR
	// DrainDelay (HTTP_DRAIN_DELAY) is how long Run keeps serving after its context ended, with
	// /readyz answering 503, before it stops accepting connections: the time a load balancer needs to
	// stop sending new requests.
	DrainDelay time.Duration
}

// ReadListen reads HTTP_ADDR (addr when unset) and HTTP_DRAIN_DELAY (2 s when unset: enough for a
// load balancer or Kubernetes endpoints to stop sending new requests once /readyz says 503).
func ReadListen(r *envconfig.Reader, addr string) Listen {
	return Listen{Addr: r.String("HTTP_ADDR", addr), DrainDelay: r.Duration("HTTP_DRAIN_DELAY", 2*time.Second, 0, time.Minute)}
}

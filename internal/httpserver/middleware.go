package httpserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

type requestIDKey struct{}

// RequestID returns the id the Common middleware gave the request ("" outside a request).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Common is the middleware every orders API uses, outermost first: panic recovery, a server-made request
// id (X-Request-ID in the answer; an id sent by the client is not trusted as a causation id), one JSON
// log line per request (debug level for successful probes and scrapes), and the body limit (413 above it).
func Common(log *slog.Logger, bodyLimit string) []echo.MiddlewareFunc {
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
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				start := time.Now()
				err := next(c)
				if err != nil {
					c.Error(err) // write the answer now so the status below is the one sent
				}
				req, res := c.Request(), c.Response()
				level := slog.LevelInfo
				switch {
				case res.Status >= 500:
					level = slog.LevelError
				case res.Status < 400 && quietRoutes[c.Path()]:
					level = slog.LevelDebug // probes and scrapes every few seconds would drown the log
				}
				log.LogAttrs(req.Context(), level, "request",
					slog.String("method", req.Method), slog.String("path", req.URL.Path),
					slog.String("route", c.Path()), slog.Int("status", res.Status),
					slog.Int64("bytes", res.Size), slog.Duration("duration", time.Since(start)),
					slog.String("request_id", RequestID(req.Context())))
				return nil
			}
		},
		middleware.BodyLimit(bodyLimit),
	}
}

// quietRoutes are logged at debug level when they succeed.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

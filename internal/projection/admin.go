package projection

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/problem"
)

// Routes adds a projector's operator endpoint to e: POST /parked/{order}/replay replays an order's
// parked events after a fix (ordersctl projector replay orders|search ID). The loop is set once the
// projector has started (its servers answered); until then the endpoint answers 503. mw guards it
// (the service's authentication).
func Routes(e *echo.Echo, loop *atomic.Pointer[Loop], mw ...echo.MiddlewareFunc) {
	e.POST("/parked/:order/replay", func(c echo.Context) error {
		l := loop.Load()
		if l == nil {
			return problem.New(http.StatusServiceUnavailable, "starting", "the projector is starting (waiting for its servers); retry shortly")
		}
		n, err := l.Replay(c.Request().Context(), c.Param("order"))
		switch {
		case errors.Is(err, ErrNothingParked):
			return problem.New(http.StatusNotFound, "not_parked", err.Error())
		case err != nil:
			return problem.New(http.StatusConflict, "replay_failed", err.Error())
		}
		return c.JSON(http.StatusOK, map[string]any{"order_id": c.Param("order"), "replayed": n})
	}, mw...)
}

// WaitFor retries f while a server it needs is away (the services may start in any order), with
// backoff up to 5 s, until it succeeds or ctx ends. ErrOffsetBelowLogStart is not retried: it needs
// an operator.
func WaitFor[T any](ctx context.Context, log *slog.Logger, what string, f func() (T, error)) (T, error) {
	backoff := 100 * time.Millisecond
	for {
		v, err := f()
		if err == nil || errors.Is(err, ErrOffsetBelowLogStart) {
			return v, err
		}
		log.Warn("waiting for "+what, "error", err.Error(), "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

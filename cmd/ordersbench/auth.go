package main

import (
	"context"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
)

// benchIssuer signs the benchmarks' tokens; the in-process APIs trust it (ES256, the dev key's
// algorithm), with rate limits far above what one machine sends.
var benchIssuer = func() *authtest.Issuer {
	i, err := authtest.NewIssuer(authtest.Options{RateRPS: 1e9, RateBurst: 1e9})
	if err != nil {
		panic(err)
	}
	return i
}()

// benchTokens are one staff token per client (distinct subjects: each principal's rate bucket and
// verified-token cache entry is its own, as with real clients).
var benchTokens = func() []string {
	out := make([]string, 64)
	for i := range out {
		t, err := benchIssuer.SignRequest(auth.TokenRequest{Subject: fmt.Sprintf("bench-%d", i), Role: auth.Staff, TTL: 24 * time.Hour})
		if err != nil {
			panic(err)
		}
		out[i] = "Bearer " + t
	}
	return out
}()

// tokenFor is client worker's Authorization header.
func tokenFor(worker int) string { return benchTokens[worker%len(benchTokens)] }

// noAuth is the baseline of the write benchmark only: it puts a fixed staff principal in every request
// without looking at any token, so that "POST /orders with a verified token" has a figure to be set
// beside, measured in the same run. The services have no such mode (httpserver refuses every API
// route without an authenticator).
type noAuth struct{}

func (noAuth) Middleware() echo.MiddlewareFunc {
	p := auth.Principal{Subject: "bench", Role: auth.Staff}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
			return next(c)
		}
	}
}

func (noAuth) Ready(context.Context) error { return nil }

package auth

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/orders-oss/orders/internal/problem"
)

// Realm is the realm of every WWW-Authenticate challenge.
const Realm = "orders"

// Authenticator is what the chassis runs in front of every protected route: it authenticates the
// bearer token, limits the request rate per principal (and, for requests it refuses, per client
// address), and puts the Principal in the request's context.
type Authenticator struct {
	Verifier *Verifier
	Keys     *KeySet
	// PerPrincipal limits authenticated requests by subject; PerAddress limits refused ones by client
	// address (so guessing tokens is slow too).
	PerPrincipal, PerAddress *Limiter
	// TrustedProxies are the peers whose X-Forwarded-For is believed (TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	Now            func() time.Time
}

// Ready reports whether the verification keys are loaded (for /readyz).
func (a *Authenticator) Ready(ctx context.Context) error { return a.Keys.Ready(ctx) }

// Middleware authenticates every request it sees.
func (a *Authenticator) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			now := a.now()
			p, err := a.authenticate(req)
			if err != nil {
				if errors.Is(err, ErrKeysUnavailable) {
					a.log().WarnContext(req.Context(), "token keys unavailable", "error", err.Error())
					return problem.New(http.StatusServiceUnavailable, "auth_unavailable", "tokens cannot be verified right now; retry shortly")
				}
				if d := a.PerAddress.Wait(a.ClientAddr(req), now); d > 0 {
					return tooMany(c, d)
				}
				return Unauthenticated(c, err)
			}
			if d := a.PerPrincipal.Wait(p.Subject, now); d > 0 {
				return tooMany(c, d)
			}
			c.SetRequest(req.WithContext(WithPrincipal(req.Context(), p)))
			return next(c)
		}
	}
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Authenticator) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

// errNoToken: the request carries no bearer token (the challenge then names no error, RFC 6750 3.1).
var errNoToken = errors.New("no bearer token")

// errMalformed: the Authorization header is a Bearer one but not a single token.
var errMalformed = errors.New("the Authorization header must be `Bearer <token>`")

func (a *Authenticator) authenticate(req *http.Request) (Principal, error) {
	h := req.Header.Values("Authorization")
	if len(h) == 0 {
		return Principal{}, errNoToken
	}
	if len(h) > 1 {
		return Principal{}, errMalformed
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(h[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, errNoToken // another scheme: nothing orders knows
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t,") {
		return Principal{}, errMalformed
	}
	return a.Verifier.Verify(req.Context(), token)
}

// Unauthenticated answers 401 with code unauthenticated and the Bearer challenge for err.
func Unauthenticated(c echo.Context, err error) error {
	challenge := `Bearer realm="` + Realm + `"`
	detail := "this request needs a bearer token (Authorization: Bearer <token>)"
	var te *TokenError
	switch {
	case errors.As(err, &te):
		challenge += `, error="invalid_token", error_description="` + quoteSafe(te.Reason) + `"`
		detail = "the bearer token was refused: " + te.Reason
	case errors.Is(err, errMalformed):
		challenge += `, error="invalid_request", error_description="` + quoteSafe(errMalformed.Error()) + `"`
		detail = errMalformed.Error()
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
	return problem.New(http.StatusUnauthorized, "unauthenticated", detail)
}

// quoteSafe keeps a text fit for a quoted-string of a challenge (RFC 6750 forbids " and \ there).
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

// Forbidden is the answer to a principal that may not do what it asks (it may see the order).
func Forbidden(detail string) error {
	return problem.New(http.StatusForbidden, "forbidden", detail)
}

// Require lets through only principals that Can do a; others get 403.
func Require(a Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := FromContext(c.Request().Context())
			if !ok {
				return Unauthenticated(c, errNoToken)
			}
			if !p.Can(a) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="`+Realm+`", error="insufficient_scope"`)
				return Forbidden("the role " + string(p.Role) + " may not do this")
			}
			return next(c)
		}
	}
}

func tooMany(c echo.Context, wait time.Duration) error {
	secs := int(math.Ceil(wait.Seconds()))
	c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	return problem.Newf(http.StatusTooManyRequests, "rate_limited", "too many requests; retry in %d s", max(secs, 1))
}

// ClientAddr is the address a request comes from: the TCP peer, unless the peer is a trusted proxy;
// then X-Forwarded-For is read from the right, skipping trusted proxies, and the first address that is
// not one is the client (what a client writes at the left of the header itself is never believed).
func (a *Authenticator) ClientAddr(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !a.trusted(peer.Unmap()) {
		return host
	}
	var hops []string
	for _, v := range req.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer.Unmap().String()
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage from here on left: the last hop we believe is the client
		}
		client = ip.Unmap().String()
		if !a.trusted(ip.Unmap()) {
			break
		}
	}
	return client
}

func (a *Authenticator) trusted(ip netip.Addr) bool {
	for _, p := range a.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseProxies reads TRUSTED_PROXIES: CIDRs or single addresses.
func ParseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, errors.New(s + " is not a CIDR (10.0.0.0/8) or an address")
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}

// Limiter is a token bucket per key (a subject, a client address), forgotten once full again.
type Limiter struct {
	rps   rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// NewLimiter allows rps requests a second per key on average, up to burst at once.
func NewLimiter(rps float64, burst int) *Limiter {
	return &Limiter{rps: rate.Limit(rps), burst: burst, buckets: map[string]*bucket{}}
}

// Wait takes one request from key's bucket at now: 0 when it may go, else how long until it could.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(l.rps, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.l.ReserveN(now, 1)
	if !r.OK() {
		return time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// sweep drops buckets that have been idle long enough to be full again (a new one is the same).
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	full := time.Duration(float64(l.burst) / float64(l.rps) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
}

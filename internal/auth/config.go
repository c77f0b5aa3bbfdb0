package auth

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/orders-oss/orders/internal/envconfig"
)

// Modes of AUTH_MODE. There is no mode without authentication.
const (
	ModeDev  = "dev"
	ModeOIDC = "oidc"
)

// Config is the authentication and abuse-limit configuration every API service reads
// (docs/configuration.md, docs/security.md).
type Config struct {
	Mode       string // AUTH_MODE: dev or oidc
	JWKSURL    string // AUTH_JWKS_URL (oidc)
	JWKSFile   string // AUTH_JWKS_FILE (oidc)
	DevDir     string // AUTH_DEV_DIR (dev): where the dev signing key and its JWKS live
	Issuer     string // AUTH_ISSUER
	Audience   string // AUTH_AUDIENCE
	Algorithms []jose.SignatureAlgorithm
	Leeway     time.Duration
	Refresh    time.Duration
	RateRPS    float64 // RATE_LIMIT_RPS
	RateBurst  int     // RATE_LIMIT_BURST
	Proxies    []netip.Prefix
}

// Defaults of the abuse limits.
const (
	DefaultRateRPS   = 50
	DefaultRateBurst = 100
)

// DefaultDevDir is where the dev key lives unless AUTH_DEV_DIR says otherwise: .local/auth under
// ORDERS_LOCAL_DIR, or under the working directory (the repository root for `make up`).
func DefaultDevDir(getenv func(string) string) string {
	if d := getenv("ORDERS_LOCAL_DIR"); d != "" {
		return filepath.Join(d, "auth")
	}
	return filepath.Join(".local", "auth")
}

// ReadConfig reads the AUTH_*, RATE_LIMIT_* and TRUSTED_PROXIES variables.
func ReadConfig(r *envconfig.Reader, getenv func(string) string) Config {
	c := Config{
		Mode:      r.Required("AUTH_MODE"),
		JWKSURL:   r.String("AUTH_JWKS_URL", ""),
		JWKSFile:  r.String("AUTH_JWKS_FILE", ""),
		DevDir:    r.String("AUTH_DEV_DIR", DefaultDevDir(getenv)),
		Issuer:    r.String("AUTH_ISSUER", ""),
		Audience:  r.String("AUTH_AUDIENCE", ""),
		Leeway:    r.Duration("AUTH_LEEWAY", DefaultLeeway, 0, 5*time.Minute),
		Refresh:   r.Duration("AUTH_JWKS_REFRESH", DefaultRefresh, time.Minute, 24*time.Hour),
		RateBurst: r.Int("RATE_LIMIT_BURST", DefaultRateBurst, 1, 1_000_000),
	}
	algs, err := ParseAlgorithms(r.List("AUTH_ALGORITHMS", false))
	r.Check(err == nil, "AUTH_ALGORITHMS", "%v", err)
	c.Algorithms = algs
	c.RateRPS = DefaultRateRPS
	if v := r.String("RATE_LIMIT_RPS", ""); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		r.Check(err == nil && f >= 0.01 && f <= 1_000_000, "RATE_LIMIT_RPS", "must be a number of requests a second from 0.01 to 1000000, got %q", v)
		if err == nil {
			c.RateRPS = f
		}
	}
	proxies, err := ParseProxies(r.List("TRUSTED_PROXIES", false))
	r.Check(err == nil, "TRUSTED_PROXIES", "%v", err)
	c.Proxies = proxies
	switch c.Mode {
	case ModeDev:
		r.Check(c.JWKSURL == "" && c.JWKSFile == "", "AUTH_MODE", "dev trusts only the local dev key: leave AUTH_JWKS_URL and AUTH_JWKS_FILE unset")
		if c.Issuer == "" {
			c.Issuer = DevIssuer
		}
		if c.Audience == "" {
			c.Audience = DevAudience
		}
	case ModeOIDC:
		r.Check((c.JWKSURL == "") != (c.JWKSFile == ""), "AUTH_JWKS_URL", "exactly one of AUTH_JWKS_URL and AUTH_JWKS_FILE is required with AUTH_MODE=oidc")
		r.Check(c.Issuer != "", "AUTH_ISSUER", "is required with AUTH_MODE=oidc")
		r.Check(c.Audience != "", "AUTH_AUDIENCE", "is required with AUTH_MODE=oidc")
	case "":
	default:
		r.Check(false, "AUTH_MODE", "must be dev or oidc (there is no mode without authentication), got %q", c.Mode)
	}
	return c
}

// New builds the authenticator. In dev mode it creates the dev key on first use.
func New(c Config, log *slog.Logger) (*Authenticator, error) {
	var keys *KeySet
	switch c.Mode {
	case ModeDev:
		k, err := EnsureDevKey(c.DevDir)
		if err != nil {
			return nil, err
		}
		keys = NewFileKeySet(k.JWKSPath, c.Refresh, time.Second)
	case ModeOIDC:
		if c.JWKSURL != "" {
			keys = NewURLKeySet(c.JWKSURL, nil, c.Refresh, DefaultMinRefresh)
		} else {
			keys = NewFileKeySet(c.JWKSFile, c.Refresh, DefaultMinRefresh)
		}
	default:
		return nil, errMode(c.Mode)
	}
	v, err := NewVerifier(VerifierConfig{Keys: keys, Issuer: c.Issuer, Audience: c.Audience, Algorithms: c.Algorithms, Leeway: c.Leeway})
	if err != nil {
		return nil, err
	}
	return &Authenticator{Verifier: v, Keys: keys, PerPrincipal: NewLimiter(c.RateRPS, c.RateBurst),
		PerAddress: NewLimiter(c.RateRPS, c.RateBurst), TrustedProxies: c.Proxies, Log: log}, nil
}

type errMode string

func (e errMode) Error() string {
	return "AUTH_MODE " + strconv.Quote(string(e)) + " is not dev or oidc"
}

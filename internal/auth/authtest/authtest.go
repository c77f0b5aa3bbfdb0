// Package authtest gives tests and benchmarks a token issuer of their own: a fresh ES256 key, an
// Authenticator that trusts only it (with the issuer and audience of development mode), and real signed
// tokens for any principal.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/orders-oss/orders/internal/auth"
)

// Issuer signs tokens that its Authenticator accepts.
type Issuer struct {
	Key   *ecdsa.PrivateKey
	KeyID string
	Auth  *auth.Authenticator
}

// Options tune the authenticator (zero values: generous rate limits, no trusted proxies).
type Options struct {
	RateRPS   float64
	RateBurst int
	Proxies   []string
}

// New returns an issuer with a new key.
func New(t testing.TB, opts ...Options) *Issuer {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	i, err := NewIssuer(o)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// NewIssuer is New for programs that are not tests (the benchmarks).
func NewIssuer(o Options) (*Issuer, error) {
	if o.RateRPS == 0 {
		o.RateRPS, o.RateBurst = 1_000_000, 1_000_000
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := "test-" + time.Now().Format("150405.000000000")
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	keys := auth.NewStaticKeySet(set)
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: keys, Issuer: auth.DevIssuer, Audience: auth.DevAudience, Leeway: auth.DefaultLeeway})
	if err != nil {
		return nil, err
	}
	proxies, err := auth.ParseProxies(o.Proxies)
	if err != nil {
		return nil, err
	}
	return &Issuer{Key: key, KeyID: kid, Auth: &auth.Authenticator{Verifier: v, Keys: keys,
		PerPrincipal: auth.NewLimiter(o.RateRPS, o.RateBurst), PerAddress: auth.NewLimiter(o.RateRPS, o.RateBurst), TrustedProxies: proxies}}, nil
}

// Token signs a token for p valid for an hour.
func (i *Issuer) Token(t testing.TB, p auth.Principal) string {
	t.Helper()
	return i.Sign(t, auth.TokenRequest{Subject: p.Subject, Role: p.Role, CustomerID: p.CustomerID, TTL: time.Hour})
}

// Sign signs any request (issuer and audience default to the dev ones).
func (i *Issuer) Sign(t testing.TB, req auth.TokenRequest) string {
	t.Helper()
	tok, err := i.SignRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// SignRequest is Sign for programs that are not tests.
func (i *Issuer) SignRequest(req auth.TokenRequest) (string, error) {
	return auth.DevKey{Private: i.Key, KeyID: i.KeyID}.Sign(req)
}

// Bearer is the Authorization header value for p.
func (i *Issuer) Bearer(t testing.TB, p auth.Principal) string { return "Bearer " + i.Token(t, p) }

// The principals most tests use.
var (
	Staff = auth.Principal{Subject: "staff-1", Role: auth.Staff}
	Admin = auth.Principal{Subject: "admin-1", Role: auth.Admin}
	Ada   = auth.Principal{Subject: "ada", Role: auth.Customer, CustomerID: "cus_1042"}
	Bob   = auth.Principal{Subject: "bob", Role: auth.Customer, CustomerID: "cus_2001"}
)

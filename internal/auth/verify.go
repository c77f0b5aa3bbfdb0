package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultAlgorithms are the signature algorithms accepted unless AUTH_ALGORITHMS says otherwise: every
// asymmetric JWS algorithm (RFC 7518, RFC 8037). HMAC algorithms and "none" can never be configured.
var DefaultAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384,
	jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat.
const DefaultLeeway = 30 * time.Second

// maxTokenLen bounds what is parsed at all (a JWT of this system is well under 2 KB).
const maxTokenLen = 8 << 10

// TokenError is a token refused: the answer is 401 with WWW-Authenticate: Bearer error="invalid_token".
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "invalid token: " + e.Reason }

func invalid(format string, args ...any) error {
	return &TokenError{Reason: fmt.Sprintf(format, args...)}
}

// ErrKeysUnavailable: the verification keys could not be loaded (the JWKS URL does not answer, the file
// is missing). The answer is 503: the token may well be good.
var ErrKeysUnavailable = errors.New("the token verification keys are not available")

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	keys       *KeySet
	issuer     string
	audience   string
	algorithms []jose.SignatureAlgorithm
	leeway     time.Duration
	now        func() time.Time

	// cache remembers tokens already verified (by their SHA-256), until they expire or the key set
	// changes: the signature check is the costly part of a request, and clients resend one token.
	mu    sync.Mutex
	cache map[[32]byte]cached
	gen   uint64 // the key set generation the cache was filled with
}

type cached struct {
	p     Principal
	until time.Time
}

// maxCached bounds the verified-token cache; when full it is emptied (tokens are simply verified again).
const maxCached = 10_000

// cacheFor bounds how long a verified token is taken on trust without checking again.
const cacheFor = 5 * time.Minute

// VerifierConfig is what a Verifier checks.
type VerifierConfig struct {
	Keys       *KeySet
	Issuer     string // iss must equal it
	Audience   string // aud must contain it
	Algorithms []jose.SignatureAlgorithm
	Leeway     time.Duration
	Now        func() time.Time // time.Now when nil
}

// NewVerifier returns a verifier. It refuses an empty issuer or audience and any algorithm that is not
// asymmetric.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Keys == nil || cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: a verifier needs keys, an issuer and an audience")
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = DefaultAlgorithms
	}
	for _, a := range cfg.Algorithms {
		if !asymmetric(a) {
			return nil, fmt.Errorf("auth: algorithm %q is not an asymmetric signature algorithm", a)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{keys: cfg.Keys, issuer: cfg.Issuer, audience: cfg.Audience, algorithms: cfg.Algorithms,
		leeway: cfg.Leeway, now: cfg.Now, cache: map[[32]byte]cached{}}, nil
}

func asymmetric(a jose.SignatureAlgorithm) bool {
	for _, d := range DefaultAlgorithms {
		if a == d {
			return true
		}
	}
	return false
}

// ParseAlgorithms reads a comma-separated list of JWS algorithm names, refusing any that is not in
// DefaultAlgorithms.
func ParseAlgorithms(names []string) ([]jose.SignatureAlgorithm, error) {
	var out []jose.SignatureAlgorithm
	for _, n := range names {
		a := jose.SignatureAlgorithm(n)
		if !asymmetric(a) {
			return nil, fmt.Errorf("%q is not one of the asymmetric algorithms %v", n, DefaultAlgorithms)
		}
		out = append(out, a)
	}
	return out, nil
}

// tokenClaims is what orders reads from a token.
type tokenClaims struct {
	jwt.Claims
	Role       string `json:"orders_role,omitempty"`
	CustomerID string `json:"orders_customer_id,omitempty"`
}

// Verify checks a bearer token and returns its principal. A refused token is a *TokenError; keys that
// cannot be loaded are ErrKeysUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > maxTokenLen {
		return Principal{}, invalid("the token is empty or too long")
	}
	now := v.now()
	sum := sha256.Sum256([]byte(token))
	gen := v.keys.Generation()
	v.mu.Lock()
	if v.gen != gen { // keys changed: what was verified with the old set is checked again
		clear(v.cache)
		v.gen = gen
	}
	c, ok := v.cache[sum]
	v.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.p, nil
	}
	p, exp, err := v.verify(ctx, token, now)
	if err != nil {
		return Principal{}, err
	}
	until := now.Add(cacheFor)
	if exp.Before(until) {
		until = exp
	}
	v.mu.Lock()
	if len(v.cache) >= maxCached {
		clear(v.cache)
	}
	if v.gen == gen {
		v.cache[sum] = cached{p: p, until: until}
	}
	v.mu.Unlock()
	return p, nil
}

func (v *Verifier) verify(ctx context.Context, token string, now time.Time) (Principal, time.Time, error) {
	// ParseSigned refuses any algorithm not in the list ("none" and the HMAC family never are).
	tok, err := jwt.ParseSigned(token, v.algorithms)
	if err != nil {
		return Principal{}, time.Time{}, invalid("not a signed JWT with an accepted algorithm (%v)", err)
	}
	if len(tok.Headers) != 1 {
		return Principal{}, time.Time{}, invalid("the token must have exactly one signature")
	}
	h := tok.Headers[0]
	key, err := v.keys.Lookup(ctx, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	var c tokenClaims
	if err := tok.Claims(key, &c); err != nil {
		return Principal{}, time.Time{}, invalid("the signature does not verify")
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, AnyAudience: jwt.Audience{v.audience}, Time: now}, v.leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return Principal{}, time.Time{}, invalid("the token has expired")
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Principal{}, time.Time{}, invalid("the token is not valid yet")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Principal{}, time.Time{}, invalid("the token is from another issuer")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Principal{}, time.Time{}, invalid("the token is for another audience")
	case err != nil:
		return Principal{}, time.Time{}, invalid("%v", err)
	}
	if c.Expiry == nil {
		return Principal{}, time.Time{}, invalid("the token has no exp")
	}
	p, err := principal(c)
	if err != nil {
		return Principal{}, time.Time{}, err
	}
	return p, c.Expiry.Time().Add(v.leeway), nil
}

// principal checks the orders claims.
func principal(c tokenClaims) (Principal, error) {
	if !goodText(c.Subject) {
		return Principal{}, invalid("sub must be 1 to 200 characters")
	}
	role, err := ParseRole(c.Role)
	if err != nil {
		return Principal{}, invalid("the claim %s must be customer, staff or admin", RoleClaim)
	}
	p := Principal{Subject: c.Subject, Role: role}
	if role == Customer {
		if !goodText(c.CustomerID) {
			return Principal{}, invalid("a customer token needs the claim %s (1 to 200 characters)", CustomerClaim)
		}
		p.CustomerID = c.CustomerID
	}
	return p, nil
}

func goodText(s string) bool {
	return s != "" && utf8.RuneCountInString(s) <= 200 && utf8.ValidString(s) && strings.TrimSpace(s) == s &&
		!strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// keyFamily is the key type each of DefaultAlgorithms verifies with.
var keyFamily = map[jose.SignatureAlgorithm]string{jose.RS256: "RSA", jose.RS384: "RSA", jose.RS512: "RSA", jose.PS256: "RSA",
	jose.PS384: "RSA", jose.PS512: "RSA", jose.ES256: "EC", jose.ES384: "EC", jose.ES512: "EC", jose.EdDSA: "OKP"}

// usableKey checks that a key of the set may verify a token signed with alg.
func usableKey(k jose.JSONWebKey, alg jose.SignatureAlgorithm) (any, error) {
	if k.Use != "" && k.Use != "sig" {
		return nil, invalid("key %q is not a signing key", k.KeyID)
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return nil, invalid("key %q is for %s, not %s", k.KeyID, k.Algorithm, alg)
	}
	family := ""
	switch k.Key.(type) {
	case *rsa.PublicKey:
		family = "RSA"
	case *ecdsa.PublicKey:
		family = "EC"
	case ed25519.PublicKey:
		family = "OKP"
	default:
		return nil, invalid("key %q is not an asymmetric public key", k.KeyID)
	}
	if family != keyFamily[alg] {
		return nil, invalid("key %q cannot verify %s", k.KeyID, alg)
	}
	return k.Key, nil
}

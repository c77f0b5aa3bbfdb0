package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
)

func b64(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// forged builds a compact JWT by hand: what an attacker sends.
func forged(header, claims map[string]any, sign func(input string) []byte) string {
	input := b64(header) + "." + b64(claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(sign(input))
}

func goodClaims() map[string]any {
	now := time.Now()
	return map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "mallory", "orders_role": "admin",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	iss := authtest.New(t)
	pubDER, _ := x509.MarshalPKIXPublicKey(&iss.Key.PublicKey)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherSigned, err := auth.Sign(other, iss.KeyID, jose.ES256, auth.TokenRequest{Issuer: auth.DevIssuer, Audience: auth.DevAudience,
		Subject: "x", Role: auth.Staff, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaSigned, _ := auth.Sign(rsaKey, iss.KeyID, jose.RS256, auth.TokenRequest{Issuer: auth.DevIssuer, Audience: auth.DevAudience,
		Subject: "x", Role: auth.Staff, TTL: time.Hour})
	sign := func(req auth.TokenRequest) string { return iss.Sign(t, req) }
	staff := func(f func(*auth.TokenRequest)) string {
		r := auth.TokenRequest{Subject: "s", Role: auth.Staff, TTL: time.Hour}
		f(&r)
		return sign(r)
	}
	tests := []struct{ name, token, want string }{
		{"alg none", forged(map[string]any{"alg": "none", "typ": "JWT", "kid": iss.KeyID}, goodClaims(), func(string) []byte { return nil }), "accepted algorithm"},
		{"HMAC keyed with the public key", forged(map[string]any{"alg": "HS256", "typ": "JWT", "kid": iss.KeyID}, goodClaims(), func(in string) []byte {
			m := hmac.New(sha256.New, pubDER)
			m.Write([]byte(in))
			return m.Sum(nil)
		}), "accepted algorithm"},
		{"signed by another key", otherSigned, "signature"},
		{"RS256 under an EC key's kid", rsaSigned, "not RS256"},
		{"unknown kid", forged(map[string]any{"alg": "ES256", "kid": "nope"}, goodClaims(), func(string) []byte { return make([]byte, 64) }), "no key with kid"},
		{"wrong issuer", staff(func(r *auth.TokenRequest) { r.Issuer = "https://evil.example" }), "another issuer"},
		{"wrong audience", staff(func(r *auth.TokenRequest) { r.Audience = "billing" }), "another audience"},
		{"expired", staff(func(r *auth.TokenRequest) { r.Now = time.Now().Add(-2 * time.Hour) }), "expired"},
		{"not valid yet", staff(func(r *auth.TokenRequest) { r.Now = time.Now().Add(10 * time.Minute) }), "not valid yet"},
		{"garbage", "a.b.c", "accepted algorithm"},
		{"customer without customer id", "", ""},
	}
	// The last case needs a real signature over claims lacking orders_customer_id: sign by hand.
	tests[len(tests)-1].token = signRaw(t, iss, map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "c",
		"orders_role": "customer", "exp": time.Now().Add(time.Hour).Unix()})
	tests[len(tests)-1].want = "orders_customer_id"
	tests = append(tests,
		struct{ name, token, want string }{"no role", signRaw(t, iss, map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "c",
			"exp": time.Now().Add(time.Hour).Unix()}), "orders_role"},
		struct{ name, token, want string }{"no exp", signRaw(t, iss, map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "c",
			"orders_role": "staff"}), "no exp"},
		struct{ name, token, want string }{"unknown role", signRaw(t, iss, map[string]any{"iss": auth.DevIssuer, "aud": auth.DevAudience, "sub": "c",
			"orders_role": "root", "exp": time.Now().Add(time.Hour).Unix()}), "orders_role"},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := iss.Auth.Verifier.Verify(context.Background(), tt.token)
			var te *auth.TokenError
			if !errors.As(err, &te) || !strings.Contains(te.Reason, tt.want) {
				t.Fatalf("Verify() = %+v, %v; want a TokenError about %q", p, err, tt.want)
			}
		})
	}
	// And a good one passes, with its claims.
	p, err := iss.Auth.Verifier.Verify(context.Background(), iss.Token(t, authtest.Ada))
	if err != nil || p != authtest.Ada {
		t.Fatalf("Verify(good) = %+v, %v; want %+v", p, err, authtest.Ada)
	}
	// Within the leeway an expired token still passes (clocks differ a little).
	if _, err := iss.Auth.Verifier.Verify(context.Background(), staff(func(r *auth.TokenRequest) {
		r.TTL, r.Now = time.Minute, time.Now().Add(-time.Minute-10*time.Second)
	})); err != nil {
		t.Errorf("Verify(expired 10 s ago) = %v; want accepted within the 30 s leeway", err)
	}
}

// signRaw signs arbitrary claims with the issuer's key.
func signRaw(t *testing.T, iss *authtest.Issuer, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: iss.Key, KeyID: iss.KeyID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(claims)
	jws, err := signer.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNoHMACOrNoneCanBeConfigured(t *testing.T) {
	for _, names := range [][]string{{"HS256"}, {"none"}, {"ES256", "HS512"}} {
		if _, err := auth.ParseAlgorithms(names); err == nil {
			t.Errorf("ParseAlgorithms(%v) = nil error, want a refusal", names)
		}
	}
	if _, err := auth.NewVerifier(auth.VerifierConfig{Keys: auth.NewStaticKeySet(jose.JSONWebKeySet{}), Issuer: "i", Audience: "a",
		Algorithms: []jose.SignatureAlgorithm{jose.HS256}}); err == nil {
		t.Error("NewVerifier(HS256) = nil error, want a refusal")
	}
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		p    auth.Principal
		a    auth.Action
		want bool
	}{
		{authtest.Ada, auth.PlaceOrder, true}, {authtest.Ada, auth.ChangeOrder, true}, {authtest.Ada, auth.ReadOrders, true},
		{authtest.Ada, auth.ShipOrder, false}, {authtest.Ada, auth.DeliverOrder, false}, {authtest.Ada, auth.ReplayParked, false},
		{authtest.Staff, auth.ShipOrder, true}, {authtest.Staff, auth.DeliverOrder, true}, {authtest.Staff, auth.ReplayParked, false},
		{authtest.Admin, auth.ReplayParked, true}, {auth.Principal{Subject: "x", Role: auth.Customer}, auth.PlaceOrder, false},
	}
	for _, tt := range tests {
		if got := tt.p.Can(tt.a); got != tt.want {
			t.Errorf("%s.Can(%s) = %v, want %v", tt.p.Role, tt.a, got, tt.want)
		}
	}
	if !authtest.Ada.Sees("cus_1042") || authtest.Ada.Sees("cus_2001") || !authtest.Staff.Sees("cus_2001") {
		t.Error("Sees: a customer sees only its own orders, staff every order")
	}
}

func TestClientAddr(t *testing.T) {
	proxies, _ := auth.ParseProxies([]string{"10.0.0.0/8", "127.0.0.1"})
	a := &auth.Authenticator{TrustedProxies: proxies}
	tests := []struct{ peer, xff, want string }{
		{"203.0.113.9:1234", "1.2.3.4", "203.0.113.9"},               // an untrusted peer's header is ignored
		{"127.0.0.1:1234", "198.51.100.7", "198.51.100.7"},           // a trusted proxy says who it saw
		{"127.0.0.1:1234", "6.6.6.6, 198.51.100.7", "198.51.100.7"},  // the client's own left part is not believed
		{"127.0.0.1:1234", "198.51.100.7, 10.1.1.1", "198.51.100.7"}, // proxies in a chain are skipped
		{"127.0.0.1:1234", "", "127.0.0.1"},
		{"127.0.0.1:1234", "junk, 198.51.100.7", "198.51.100.7"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := a.ClientAddr(r); got != tt.want {
			t.Errorf("ClientAddr(peer %s, XFF %q) = %s, want %s", tt.peer, tt.xff, got, tt.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := auth.NewLimiter(1, 3)
	now := time.Now()
	for i := range 3 {
		if d := l.Wait("k", now); d != 0 {
			t.Fatalf("request %d waits %s, want 0 within the burst", i, d)
		}
	}
	if d := l.Wait("k", now); d <= 0 || d > time.Second {
		t.Fatalf("4th request waits %s, want up to 1 s", d)
	}
	if d := l.Wait("other", now); d != 0 {
		t.Errorf("another key waits %s, want 0", d)
	}
	if d := l.Wait("k", now.Add(1100*time.Millisecond)); d != 0 {
		t.Errorf("after a second the key waits %s, want 0", d)
	}
}

// Concurrent first uses of the dev key dir agree on one key.
func TestEnsureDevKeyIsRaceFree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := auth.EnsureDevKey(dir)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = k.KeyID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("key ids %v, want one key for everyone", ids)
		}
	}
	k, _ := auth.EnsureDevKey(dir)
	tok, err := k.Sign(auth.TokenRequest{Subject: "ada", Role: auth.Staff, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier(auth.VerifierConfig{Keys: auth.NewFileKeySet(k.JWKSPath, 0, 0), Issuer: auth.DevIssuer, Audience: auth.DevAudience})
	if p, err := v.Verify(context.Background(), tok); err != nil || p.Subject != "ada" {
		t.Fatalf("a dev token against the dev JWKS file = %+v, %v", p, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, auth.DevKeyFile)); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("dev key file mode = %v, %v; want private to its owner", fi.Mode(), err)
	}
}

// A JWKS URL is loaded once, and again when a token names a key it does not hold (a rotation at the
// issuer), at most every minRefresh; while the URL fails, verification answers ErrKeysUnavailable.
func TestURLKeySetFollowsRotation(t *testing.T) {
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := func(k *ecdsa.PrivateKey, kid string) jose.JSONWebKey {
		return jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}
	}
	var mu sync.Mutex
	set, fetches, down := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk(oldKey, "old")}}, 0, true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	keys := auth.NewURLKeySet(srv.URL, nil, time.Hour, time.Nanosecond)
	v, _ := auth.NewVerifier(auth.VerifierConfig{Keys: keys, Issuer: "i", Audience: "a"})
	sign := func(k *ecdsa.PrivateKey, kid string) string {
		tok, err := auth.Sign(k, kid, jose.ES256, auth.TokenRequest{Issuer: "i", Audience: "a", Subject: "s", Role: auth.Staff, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := v.Verify(context.Background(), sign(oldKey, "old")); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("Verify while the JWKS URL is down = %v, want ErrKeysUnavailable", err)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	if _, err := v.Verify(context.Background(), sign(oldKey, "old")); err != nil {
		t.Fatalf("Verify with the old key = %v", err)
	}
	mu.Lock()
	set = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk(newKey, "new")}}
	before := fetches
	mu.Unlock()
	if _, err := v.Verify(context.Background(), sign(newKey, "new")); err != nil {
		t.Fatalf("Verify with the rotated key = %v, want the set loaded again", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fetches != before+1 {
		t.Errorf("%d fetches for the unknown kid, want 1", fetches-before)
	}
}

// The first requests after a start arrive together: those that find the key set still loading wait
// for it rather than answer 503 (ordersbench's freshness load got one such auth_unavailable).
func TestFirstRequestsWaitForTheKeySetsFirstLoad(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k", Algorithm: "ES256", Use: "sig"}}}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(started); <-release })
		_ = json.NewEncoder(w).Encode(set)
	}))
	defer srv.Close()
	v, _ := auth.NewVerifier(auth.VerifierConfig{Keys: auth.NewURLKeySet(srv.URL, nil, time.Hour, time.Minute), Issuer: "i", Audience: "a"})
	tok, err := auth.Sign(key, "k", jose.ES256, auth.TokenRequest{Issuer: "i", Audience: "a", Subject: "s", Role: auth.Staff, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 9)
	go func() { _, err := v.Verify(context.Background(), tok); errs <- err }()
	<-started // the first request is loading the set
	for range 8 {
		go func() { _, err := v.Verify(context.Background(), tok); errs <- err }()
	}
	time.Sleep(200 * time.Millisecond) // the others arrive while the load runs
	close(release)
	for range 9 {
		if err := <-errs; err != nil {
			t.Errorf("Verify during the first load = %v, want it to wait and pass", err)
		}
	}
}

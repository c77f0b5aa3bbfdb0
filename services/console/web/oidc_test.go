package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
)

// fakeProvider is an OpenID provider with the authorization-code flow and PKCE (S256), as the console's
// identity provider is in production: discovery, an authorization endpoint that signs in whoever it is
// told to (next), and a token endpoint that checks the client and the verifier before it issues an access
// token signed by issuer.
type fakeProvider struct {
	t      *testing.T
	srv    *httptest.Server
	issuer *authtest.Issuer
	next   auth.Principal

	mu       sync.Mutex
	codes    map[string]pendingCode
	redeemed int
}

type pendingCode struct {
	challenge, redirect string
	who                 auth.Principal
}

const (
	testClientID     = "orders-console"
	testClientSecret = "s3cret"
)

func newFakeProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{t: t, issuer: authtest.New(t), codes: map[string]pendingCode{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"code_challenge_methods_supported": []string{"S256"}, "id_token_signing_alg_values_supported": []string{"ES256"},
		})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("client_id") != testClientID || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("state") == "" || !strings.Contains(q.Get("scope"), "openid") {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := randomToken()
		p.mu.Lock()
		p.codes[code] = pendingCode{challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), who: p.next}
		p.mu.Unlock()
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {code}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
		}
		p.mu.Lock()
		pc, known := p.codes[r.FormValue("code")]
		delete(p.codes, r.FormValue("code")) // a code is good once
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.FormValue("code_verifier")))
		switch {
		case id != testClientID || secret != testClientSecret:
			tokenError(w, http.StatusUnauthorized, "invalid_client")
		case r.FormValue("grant_type") != "authorization_code" || !known || r.FormValue("redirect_uri") != pc.redirect:
			tokenError(w, http.StatusBadRequest, "invalid_grant")
		case base64.RawURLEncoding.EncodeToString(sum[:]) != pc.challenge:
			tokenError(w, http.StatusBadRequest, "invalid_grant") // the PKCE proof failed
		default:
			p.mu.Lock()
			p.redeemed++
			p.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": p.issuer.Token(t, pc.who), "token_type": "Bearer", "expires_in": 3600})
		}
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// newOIDCConsole runs a console that signs in through p and verifies tokens with p's keys.
func newOIDCConsole(t *testing.T, p *fakeProvider) *httptest.Server {
	t.Helper()
	// The console's address is its redirect URL: the server listens first and serves the console once built.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler(w, r) }))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	login, err := NewOIDCLogin(ctx, p.srv.URL, testClientID, testClientSecret, srv.URL+"/login/callback", []string{"profile"})
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Identity: p.issuer.Auth.Verifier, Login: login,
		SessionKey: make([]byte, 32), Search: &fakeSearch{}, Orders: fakeHistory{}})
	if err != nil {
		t.Fatal(err)
	}
	handler = h.ServeHTTP
	return srv
}

func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func getPage(t *testing.T, c *http.Client, u string) (int, string, *url.URL) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Request.URL
}

func TestOIDCSignIn(t *testing.T) {
	p := newFakeProvider(t)
	console := newOIDCConsole(t, p)

	// An operator opens a page: the console sends them to the provider, which sends them back with a
	// code; the console redeems it with the PKCE verifier and lands them on the page they asked for.
	p.next = auth.Principal{Subject: "ada", Role: auth.Admin}
	browser := newBrowser()
	status, body, at := getPage(t, browser, console.URL+"/rebuild")
	if status != 200 || at.Path != "/rebuild" || !strings.Contains(body, "ada") || !strings.Contains(body, "Start the rebuild") {
		t.Fatalf("sign-in landed on %s with %d, want /rebuild as ada\n%s", at, status, body)
	}
	p.mu.Lock()
	redeemed := p.redeemed
	p.mu.Unlock()
	if redeemed != 1 {
		t.Errorf("codes redeemed = %d, want 1", redeemed)
	}
	// The development sign-in is off.
	res, err := browser.PostForm(console.URL+"/login", url.Values{"subject": {"mallory"}, "role": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("development sign-in under OIDC = %d, want 404", res.StatusCode)
	}

	// A staff member's token opens the console but not the operator pages.
	p.next = auth.Principal{Subject: "sam", Role: auth.Staff}
	if status, _, _ := getPage(t, newBrowserSignedIn(t, console), console.URL+"/rebuild"); status != http.StatusForbidden {
		t.Errorf("staff /rebuild = %d, want 403", status)
	}
	// A customer signs in at the provider and is refused by the console.
	p.next = auth.Principal{Subject: "cus_1", Role: auth.Customer, CustomerID: "cus_1"}
	if status, body, _ := getPage(t, newBrowser(), console.URL+"/search"); status != http.StatusForbidden || !strings.Contains(body, "customers use the orders API") {
		t.Errorf("customer sign-in = %d, want 403\n%s", status, body)
	}
}

// newBrowserSignedIn signs a new browser in as the provider's next principal.
func newBrowserSignedIn(t *testing.T, console *httptest.Server) *http.Client {
	t.Helper()
	b := newBrowser()
	if status, _, _ := getPage(t, b, console.URL+"/search"); status != 200 {
		t.Fatalf("sign-in = %d", status)
	}
	return b
}

func TestOIDCCallbackRefusesWhatItDidNotStart(t *testing.T) {
	p := newFakeProvider(t)
	console := newOIDCConsole(t, p)
	p.next = auth.Principal{Subject: "ada", Role: auth.Admin}

	// The victim starts a sign-in; the attacker stops theirs at the provider's answer and keeps the code.
	_, back := startSignIn(t, console)
	if back.Query().Get("code") == "" {
		t.Fatalf("the provider's answer %q has no code", back)
	}
	stolen := back.Query().Get("code")

	victim, own := startSignIn(t, console)

	// Without the victim's state: refused before the provider is asked.
	u := console.URL + "/login/callback?" + url.Values{"code": {stolen}, "state": {"guessed"}}.Encode()
	if status, body, _ := getPage(t, victim, u); status != http.StatusBadRequest || !strings.Contains(body, "Sign-in expired") {
		t.Errorf("callback with a foreign state = %d, want 400\n%s", status, body)
	}
	// With the victim's state but the attacker's code: the provider refuses the victim's verifier
	// (PKCE), so no session is made for the attacker's identity.
	u = console.URL + "/login/callback?" + url.Values{"code": {stolen}, "state": {own.Query().Get("state")}}.Encode()
	if status, body, _ := getPage(t, victim, u); status != http.StatusUnauthorized || !strings.Contains(body, "Sign-in failed") {
		t.Errorf("callback with an injected code = %d, want 401\n%s", status, body)
	}
	victim.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := victim.Get(console.URL + "/projectors")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Errorf("after a refused callback /projectors = %d to %q, want a redirect to sign in", res.StatusCode, res.Header.Get("Location"))
	}
	// The provider's own refusal is shown, not followed.
	p.next = auth.Principal{Subject: "ada", Role: auth.Admin}
	b, st := startSignIn(t, console)
	u = console.URL + "/login/callback?" + url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {st.Query().Get("state")}}.Encode()
	if status, body, _ := getPage(t, b, u); status != http.StatusUnauthorized || !strings.Contains(body, "access_denied") {
		t.Errorf("callback with the provider's error = %d, want 401 naming it\n%s", status, body)
	}
}

// startSignIn opens a page in a new browser and stops the sign-in at the provider's answer: the browser
// (following redirects again) and the callback address the provider sent it to, with code and state.
func startSignIn(t *testing.T, console *httptest.Server) (*http.Client, *url.URL) {
	t.Helper()
	b := newBrowser()
	b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/login/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	res, err := b.Get(console.URL + "/search")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	back, err := url.Parse(res.Header.Get("Location"))
	if err != nil {
		t.Fatalf("the provider's answer %q: %v", res.Header.Get("Location"), err)
	}
	b.CheckRedirect = nil
	return b, back
}

func TestOIDCDiscoveryFailureIsClear(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := NewOIDCLogin(context.Background(), srv.URL, testClientID, "", srv.URL+"/cb", nil)
	if err == nil || !strings.Contains(err.Error(), "OIDC discovery of "+srv.URL) {
		t.Fatalf("discovery of a server without a discovery document: %v", err)
	}
}

package web

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/orders-oss/orders/internal/auth"
)

// DevLogin is the development sign-in (AUTH_MODE=dev): the console signs a token for the principal the
// operator picks, with the local development key, the same key `ordersctl token` signs with and the
// services trust.
type DevLogin struct{ Key auth.DevKey }

func (DevLogin) Dev() bool { return true }

func (d DevLogin) DevToken(p auth.Principal, ttl time.Duration) (string, error) {
	return d.Key.Sign(auth.TokenRequest{Subject: p.Subject, Role: p.Role, CustomerID: p.CustomerID, TTL: ttl})
}

func (DevLogin) AuthURL(string, string) string { return "/login" }

func (DevLogin) Exchange(context.Context, string, string) (string, error) {
	return "", errors.New("the development sign-in has no identity provider")
}

// OIDCLogin is the production sign-in (AUTH_MODE=oidc): the authorization-code flow with PKCE against
// the issuer (AUTH_ISSUER), discovered from its /.well-known/openid-configuration. The console keeps the
// access token the issuer returns, for the APIs' audience, and verifies it as the APIs do.
type OIDCLogin struct {
	config oauth2.Config
}

// NewOIDCLogin discovers the issuer's endpoints. clientSecret may be empty (a public client: PKCE alone).
func NewOIDCLogin(ctx context.Context, issuer, clientID, clientSecret, redirectURL string, scopes []string) (*OIDCLogin, error) {
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("OIDC discovery of %s: %w", issuer, err)
	}
	return &OIDCLogin{config: oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURL,
		Endpoint: provider.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, scopes...)}}, nil
}

func (*OIDCLogin) Dev() bool { return false }

func (*OIDCLogin) DevToken(auth.Principal, time.Duration) (string, error) {
	return "", errors.New("the development sign-in is off (AUTH_MODE=oidc)")
}

// AuthURL is the issuer's authorization endpoint for this sign-in: the state binds the answer to the
// browser's session, the S256 challenge to the verifier only the console holds.
func (o *OIDCLogin) AuthURL(state, verifier string) string {
	return o.config.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Exchange trades the code for the access token, proving the verifier.
func (o *OIDCLogin) Exchange(ctx context.Context, code, verifier string) (string, error) {
	if code == "" {
		return "", errors.New("the identity provider sent no code")
	}
	tok, err := o.config.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("exchange the code: %w", err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("the identity provider returned no access token")
	}
	return tok.AccessToken, nil
}

// Command console is the operator console of orders (default :8085): server-rendered pages for staff
// and operators over the same code paths as the APIs and ordersctl (package web). Signing in gives the
// same kind of bearer token the APIs take (AUTH_MODE=dev: a development sign-in page; AUTH_MODE=oidc:
// the authorization-code flow with PKCE against AUTH_ISSUER).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/services/console/web"
)

func main() { httpserver.Main("console", run) }

type config struct {
	DatabaseURL   string
	Brokers       []string
	OpenSearchURL string
	Topic         string
	Alias         string
	Groups        map[rebuild.Target]string
	Projectors    map[rebuild.Target]string
	HTTP          httpserver.Listen
	Auth          auth.Config
	SessionKey    string // CONSOLE_SESSION_KEY_FILE
	SessionTTL    time.Duration
	SecureCookies bool
	OIDCClientID  string
	OIDCSecret    string
	OIDCRedirect  string
	OIDCScopes    []string
	PII           pii.Config
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		DatabaseURL:   r.Required("DATABASE_URL"),
		Brokers:       r.List("KAFKA_BROKERS", true),
		OpenSearchURL: r.Required("OPENSEARCH_URL"),
		Topic:         r.String("EVENTS_TOPIC", "orders.events"),
		Alias:         r.String("SEARCH_INDEX_ALIAS", "orders"),
		Groups: map[rebuild.Target]string{rebuild.Orders: r.String("PROJECTOR_ORDERS_GROUP", "projector-orders"),
			rebuild.Search: r.String("PROJECTOR_SEARCH_GROUP", "projector-search")},
		Projectors: map[rebuild.Target]string{rebuild.Orders: r.String("PROJECTOR_ORDERS_URL", "http://127.0.0.1:8083"),
			rebuild.Search: r.String("PROJECTOR_SEARCH_URL", "http://127.0.0.1:8084")},
		HTTP:         httpserver.ReadListen(r, ":8085"),
		Auth:         auth.ReadConfig(r, getenv),
		SessionKey:   r.String("CONSOLE_SESSION_KEY_FILE", ""),
		SessionTTL:   r.Duration("CONSOLE_SESSION_TTL", 8*time.Hour, 5*time.Minute, 7*24*time.Hour),
		OIDCClientID: r.String("CONSOLE_OIDC_CLIENT_ID", ""),
		OIDCSecret:   r.String("CONSOLE_OIDC_CLIENT_SECRET", ""),
		OIDCRedirect: r.String("CONSOLE_OIDC_REDIRECT_URL", ""),
		OIDCScopes:   r.List("CONSOLE_OIDC_SCOPES", false),
		PII:          pii.ReadConfig(r),
	}
	secure := r.String("CONSOLE_SECURE_COOKIES", "")
	r.Check(secure == "" || secure == "true" || secure == "false", "CONSOLE_SECURE_COOKIES", "must be true or false")
	// Secure cookies by default in production (HTTPS); plain HTTP on the local stack.
	c.SecureCookies = secure == "true" || secure == "" && c.Auth.Mode == auth.ModeOIDC
	if c.Auth.Mode == auth.ModeOIDC {
		r.Check(c.OIDCClientID != "", "CONSOLE_OIDC_CLIENT_ID", "is required with AUTH_MODE=oidc")
		r.Check(c.OIDCRedirect != "", "CONSOLE_OIDC_REDIRECT_URL", "is required with AUTH_MODE=oidc (https://<console>/login/callback)")
		r.Check(c.SessionKey != "", "CONSOLE_SESSION_KEY_FILE", "is required with AUTH_MODE=oidc (32 random bytes, from a Secret; every replica the same)")
	}
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "console")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return err
	}
	key, err := sessionKey(cfg.SessionKey, log)
	if err != nil {
		return err
	}
	var login web.Login
	if cfg.Auth.Mode == auth.ModeDev {
		dev, err := auth.EnsureDevKey(cfg.Auth.DevDir)
		if err != nil {
			return err
		}
		login = web.DevLogin{Key: dev}
	} else {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		login, err = web.NewOIDCLogin(dctx, cfg.Auth.Issuer, cfg.OIDCClientID, cfg.OIDCSecret, cfg.OIDCRedirect, cfg.OIDCScopes)
		cancel()
		if err != nil {
			return err
		}
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL) // connects lazily
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}
	ix := searchindex.New(osc, cfg.Alias)
	store := eventstore.New(pool)
	// Personal data is opened with the customers' data keys, as the APIs and ordersctl open it.
	keys := cfg.PII.Keyring(pool)
	h, console, err := web.New(web.Config{
		Log: log, Identity: authn.Verifier, Login: login, SessionKey: key, SecureCookies: cfg.SecureCookies, SessionTTL: cfg.SessionTTL,
		Ready: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			if err := ix.Ping(ctx); err != nil {
				return fmt.Errorf("opensearch: %w", err)
			}
			return authn.Ready(ctx)
		},
		Search: ix,
		// Orders are read exactly as the command API reads them (snapshots are the command service's own
		// cache: the console folds from the events).
		Orders:     &command.Service{Store: store, Keys: keys},
		Clients:    rebuild.Clients{Brokers: cfg.Brokers, Pool: pool, OpenSearch: osc, Keys: keys},
		Topic:      cfg.Topic,
		Alias:      cfg.Alias,
		Groups:     cfg.Groups,
		Projectors: cfg.Projectors,
	})
	if err != nil {
		return err
	}
	log.Info("console", "auth_mode", cfg.Auth.Mode, "secure_cookies", cfg.SecureCookies)
	return h.RunWith(ctx, cfg.HTTP, func(ctx context.Context) error {
		console.SampleLag(ctx, 10*time.Second)
		return nil
	})
}

// sessionKey reads the 32-byte key that seals the session cookies, or makes one for this process
// (sessions then end when it restarts; fine for development, and refused in production by loadConfig).
func sessionKey(path string, log *slog.Logger) ([]byte, error) {
	if path == "" {
		log.Warn("CONSOLE_SESSION_KEY_FILE is not set: sessions last until the console restarts")
		key := make([]byte, 32)
		_, err := rand.Read(key)
		return key, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CONSOLE_SESSION_KEY_FILE: %w", err)
	}
	if len(raw) == 32 {
		return raw, nil
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw))); err == nil && len(key) == 32 {
		return key, nil
	}
	return nil, errors.New("CONSOLE_SESSION_KEY_FILE: want 32 random bytes, raw or in base64 (openssl rand -base64 32)")
}

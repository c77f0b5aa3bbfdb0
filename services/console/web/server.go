// Package web is the operator console: server-rendered pages over the same code the APIs and ordersctl
// run (internal/searchindex for search, the event store and the domain's fold for an order and its
// history, internal/rebuild for status, parked events, rebuilds and verify, the projectors' own replay
// endpoint). Templates and assets are embedded; a few lines of script only improve what works without
// it. Signing in gives a bearer token that is verified on every request exactly as the APIs verify it.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Identity verifies bearer tokens the way the APIs do (an *auth.Verifier). Customers have no access to
// the console; staff sees everything but the operator actions (replay, rebuild, verify); admin does all.
type Identity interface {
	Verify(ctx context.Context, token string) (auth.Principal, error)
}

// Login signs an operator in: a development login page (Dev) or the OIDC authorization-code flow with
// PKCE (the console redirects to the issuer and back).
type Login interface {
	// Dev reports whether this is the development login (pick a role and a subject).
	Dev() bool
	// DevToken signs a token for p (development login only).
	DevToken(p auth.Principal, ttl time.Duration) (string, error)
	// AuthURL is where to send the browser to sign in (OIDC), for a state and PKCE verifier.
	AuthURL(state, verifier string) string
	// Exchange trades the authorization code for a token the Identity verifies (OIDC).
	Exchange(ctx context.Context, code, verifier string) (string, error)
}

// Searcher is the search read model (an *searchindex.Index).
type Searcher interface {
	Search(ctx context.Context, req searchindex.SearchRequest) (searchindex.SearchResult, error)
}

// Orders reads orders from the event store the way the command API does (internal/command): an order
// now, at a version or as of a time, and its audit trail.
type Orders interface {
	Order(ctx context.Context, p auth.Principal, id string, at command.At) (api.Order, error)
	// Timeline is the whole history, each event with the order right after it.
	Timeline(ctx context.Context, p auth.Principal, id string) ([]command.Step, error)
}

// Config wires the console.
type Config struct {
	Log      *slog.Logger
	Identity Identity
	Login    Login
	// SessionKey seals the session cookies (32 bytes); SecureCookies marks them Secure (HTTPS).
	SessionKey    []byte
	SecureCookies bool
	SessionTTL    time.Duration
	Ready         func(ctx context.Context) error

	Search Searcher
	Orders Orders
	// Clients, Topic, Alias and Groups are what internal/rebuild needs (status, parked, rebuild, verify).
	Clients rebuild.Clients
	Topic   string
	Alias   string
	Groups  map[rebuild.Target]string
	// Projectors are the projectors' operator endpoints (replay, metrics), by read model.
	Projectors map[rebuild.Target]string
	// HTTP calls the projectors (nil: a client with a 30 s timeout).
	HTTP *http.Client
}

// Server is the console.
type Server struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	jobs     *jobs
	lag      *lagHistory
}

// New builds the console's HTTP server on the service chassis.
func New(cfg Config) (*httpserver.Server, *Server, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sess, err := newSessions(cfg.SessionKey, cfg.SecureCookies)
	if err != nil {
		return nil, nil, err
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, nil, err
	}
	s := &Server{cfg: cfg, sessions: sess, pages: pages, jobs: newJobs(), lag: newLagHistory(120)}
	e := httpserver.New(httpserver.Config{Service: "console", Log: cfg.Log, Ready: cfg.Ready, BodyLimit: "64KB", Auth: sessionAuth{s}})
	e.HTTPErrorHandler = s.errorPage
	e.Use(securityHeaders)
	static, _ := fs.Sub(staticFS, "static")
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServer(http.FS(static)))))
	e.GET("/login", s.loginPage)
	e.POST("/login", s.devLogin)
	e.GET("/login/callback", s.oidcCallback)
	e.POST("/logout", s.logout, s.signedIn(auth.Staff))

	staff := s.signedIn(auth.Staff)
	admin := s.signedIn(auth.Admin)
	e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/search") }, staff)
	e.GET("/search", s.searchPage, staff)
	e.GET("/orders/:id", s.orderPage, staff)
	e.GET("/projectors", s.projectorsPage, staff)
	e.GET("/parked", s.parkedPage, staff)
	e.POST("/parked/:target/:order/replay", s.replay, admin)
	e.GET("/rebuild", s.rebuildPage, admin)
	e.POST("/rebuild", s.startRebuild, admin)
	e.POST("/verify", s.startVerify, admin)
	e.GET("/jobs/:id", s.jobPage, admin)
	e.GET("/jobs/:id/progress", s.jobJSON, admin)
	return e, s, nil
}

// SampleLag records the projectors' lag every interval until ctx ends (the chart of the projectors
// page).
func (s *Server) SampleLag(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, interval)
		if st, err := rebuild.ReadStatus(sctx, rebuild.Clients{Brokers: s.cfg.Clients.Brokers}, s.statusOptions()); err == nil {
			s.lag.add(time.Now(), st.Groups)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) statusOptions() rebuild.StatusOptions {
	return rebuild.StatusOptions{Topic: s.cfg.Topic, Alias: s.cfg.Alias,
		Groups: []string{s.cfg.Groups[rebuild.Orders], s.cfg.Groups[rebuild.Search]}}
}

// securityHeaders: no framing, no sniffing, a strict content policy (only our own scripts and styles).
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

// publicRoutes are served without a session: signing in and the assets of its page.
var publicRoutes = map[string]bool{"/login": true, "/login/callback": true, "/static/*": true}

// sessionAuth is the console's authentication on the service chassis: every route but publicRoutes
// (and the chassis's probes) needs a session whose bearer token verifies exactly as the APIs verify one
// (so a session never outlives its token); the principal goes into the request. Unknown paths too:
// nothing can be probed signed out.
type sessionAuth struct{ s *Server }

func (a sessionAuth) Ready(context.Context) error { return nil }

func (a sessionAuth) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if publicRoutes[c.Path()] {
				return next(c)
			}
			sess, ok := a.s.sessions.read(c.Request())
			if !ok || sess.Token == "" {
				return a.s.toLogin(c)
			}
			p, err := a.s.cfg.Identity.Verify(c.Request().Context(), sess.Token)
			if err != nil {
				a.s.sessions.clear(c.Response())
				return a.s.toLogin(c)
			}
			c.Set("session", sess)
			c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
			return next(c)
		}
	}
}

// signedIn requires at least role of the signed-in principal: a customer is refused (403), and so is
// staff on an admin page. Unsafe methods must carry the session's CSRF token.
func (s *Server) signedIn(role auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p := principal(c)
			if !allowed(p.Role, role) {
				return &pageError{Status: http.StatusForbidden, Title: "Not allowed",
					Message: fmt.Sprintf("Signed in as %s (%s). This page needs the role %s.", p.Subject, p.Role, role)}
			}
			if c.Request().Method != http.MethodGet && c.Request().Method != http.MethodHead && c.FormValue("csrf") != csrf(c) {
				return &pageError{Status: http.StatusForbidden, Title: "Form expired", Message: "The form was not sent from this console session; reload the page and try again."}
			}
			return next(c)
		}
	}
}

// allowed says whether role may see what needs want: admin > staff; customers see nothing.
func allowed(role, want auth.Role) bool {
	switch role {
	case auth.Admin:
		return true
	case auth.Staff:
		return want == auth.Staff
	}
	return false
}

func (s *Server) toLogin(c echo.Context) error {
	if c.Request().Method == http.MethodGet && !strings.HasSuffix(c.Path(), "/progress") {
		return c.Redirect(http.StatusSeeOther, "/login?return="+templateURL(c.Request().URL.RequestURI()))
	}
	return &pageError{Status: http.StatusUnauthorized, Title: "Signed out", Message: "Your session has ended; sign in again."}
}

// principal is who sessionAuth signed in (the zero Principal on the public routes).
func principal(c echo.Context) auth.Principal {
	p, _ := auth.FromContext(c.Request().Context())
	return p
}

// currentSession is the session sessionAuth read (the zero session on the public routes).
func currentSession(c echo.Context) session { s, _ := c.Get("session").(session); return s }

func csrf(c echo.Context) string { return currentSession(c).CSRF }

// pageError is an error shown as a page (never a blank page or a stack trace).
type pageError struct {
	Status  int
	Title   string
	Message string
}

func (e *pageError) Error() string { return e.Title + ": " + e.Message }

// errorPage renders any error as a page with a clear message; details of unexpected errors go to the log.
func (s *Server) errorPage(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var pe *pageError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
	case errors.As(err, &he) && he.Code == http.StatusNotFound:
		pe = &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "There is no such page."}
	case errors.As(err, &he) && he.Code < 500:
		pe = &pageError{Status: he.Code, Title: http.StatusText(he.Code), Message: fmt.Sprint(he.Message)}
	default:
		s.cfg.Log.ErrorContext(c.Request().Context(), "console request failed", "error", err.Error(), "path", c.Request().URL.Path)
		pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong",
			Message: "The console could not complete this request. It has been logged; try again in a moment."}
	}
	_ = s.render(c, pe.Status, "error", map[string]any{"Title": pe.Title, "Message": pe.Message})
}

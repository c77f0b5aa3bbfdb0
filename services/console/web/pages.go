package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
)

// --- signing in

// localPath keeps a return address on this console (no open redirect).
func localPath(s string) string {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") {
		return "/search"
	}
	return s
}

func (s *Server) loginPage(c echo.Context) error {
	ret := localPath(c.QueryParam("return"))
	if sess, ok := s.sessions.read(c.Request()); ok && sess.Token != "" {
		if _, err := s.cfg.Identity.Verify(c.Request().Context(), sess.Token); err == nil {
			return c.Redirect(http.StatusSeeOther, ret)
		}
	}
	if !s.cfg.Login.Dev() {
		sess := session{State: randomToken(), Verifier: randomToken() + randomToken(), Return: ret, Expires: time.Now().Add(10 * time.Minute)}
		if err := s.sessions.write(c.Response(), sess); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, s.cfg.Login.AuthURL(sess.State, sess.Verifier))
	}
	return s.render(c, http.StatusOK, "login", map[string]any{"Return": ret, "Error": c.QueryParam("error")})
}

// devLogin signs in with the development login: a token for the chosen subject and role, signed with
// the development key and verified like any other.
func (s *Server) devLogin(c echo.Context) error {
	if !s.cfg.Login.Dev() {
		return &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "Sign in through your identity provider."}
	}
	p := auth.Principal{Subject: strings.TrimSpace(c.FormValue("subject")), Role: auth.Role(c.FormValue("role")), CustomerID: strings.TrimSpace(c.FormValue("customer_id"))}
	ret := localPath(c.FormValue("return"))
	fail := func(msg string) error {
		return c.Redirect(http.StatusSeeOther, "/login?return="+url.QueryEscape(ret)+"&error="+url.QueryEscape(msg))
	}
	switch {
	case p.Subject == "" || len(p.Subject) > 200:
		return fail("Enter who you are (1 to 200 characters).")
	case p.Role != auth.Staff && p.Role != auth.Admin && p.Role != auth.Customer:
		return fail("Choose a role.")
	case p.Role == auth.Customer && p.CustomerID == "":
		return fail("A customer needs a customer id.")
	}
	token, err := s.cfg.Login.DevToken(p, s.cfg.SessionTTL)
	if err != nil {
		return err
	}
	return s.startSession(c, token, ret)
}

func (s *Server) oidcCallback(c echo.Context) error {
	sess, ok := s.sessions.read(c.Request())
	if !ok || sess.State == "" || c.QueryParam("state") != sess.State {
		return &pageError{Status: http.StatusBadRequest, Title: "Sign-in expired", Message: "The sign-in did not start here or took too long; sign in again."}
	}
	if e := c.QueryParam("error"); e != "" {
		return &pageError{Status: http.StatusUnauthorized, Title: "Sign-in refused", Message: "The identity provider said: " + e + " " + c.QueryParam("error_description")}
	}
	token, err := s.cfg.Login.Exchange(c.Request().Context(), c.QueryParam("code"), sess.Verifier)
	if err != nil {
		return &pageError{Status: http.StatusUnauthorized, Title: "Sign-in failed", Message: err.Error()}
	}
	return s.startSession(c, token, sess.Return)
}

func (s *Server) startSession(c echo.Context, token, ret string) error {
	p, err := s.cfg.Identity.Verify(c.Request().Context(), token)
	if err != nil {
		return &pageError{Status: http.StatusUnauthorized, Title: "Sign-in failed", Message: "The token was refused: " + err.Error()}
	}
	if err := s.sessions.write(c.Response(), session{Token: token, CSRF: randomToken(), Expires: time.Now().Add(s.cfg.SessionTTL)}); err != nil {
		return err
	}
	s.cfg.Log.Info("console sign-in", "subject", p.Subject, "role", p.Role)
	if p.Role == auth.Customer {
		return &pageError{Status: http.StatusForbidden, Title: "Not allowed", Message: "The console is for staff and operators; customers use the orders API."}
	}
	return c.Redirect(http.StatusSeeOther, localPath(ret))
}

func (s *Server) logout(c echo.Context) error {
	s.sessions.clear(c.Response())
	return c.Redirect(http.StatusSeeOther, "/login")
}

// action records an operator's action with their identity (the console's log; the projectors log
// their own side with the same token).
func (s *Server) action(c echo.Context, what string, attrs ...any) {
	p := principal(c)
	s.cfg.Log.InfoContext(c.Request().Context(), "console action", append([]any{"action", what, "subject", p.Subject, "role", p.Role}, attrs...)...)
}

// --- search

var statuses = []string{"placed", "paid", "shipped", "delivered", "cancelled"}

func (s *Server) searchPage(c echo.Context) error {
	req := searchindex.SearchRequest{Q: strings.TrimSpace(c.QueryParam("q")), Sort: c.QueryParam("sort"), Limit: 20,
		Cursor: c.QueryParam("cursor")}
	var problems []string
	for _, st := range c.QueryParams()["status"] {
		if !slices.Contains(statuses, st) {
			problems = append(problems, "unknown status "+st)
			continue
		}
		req.Statuses = append(req.Statuses, st)
	}
	if len(req.Q) > searchindex.MaxQueryLen {
		problems = append(problems, fmt.Sprintf("the search text is longer than %d characters", searchindex.MaxQueryLen))
	}
	if req.Sort != "" && !searchindex.ValidSort(req.Sort) {
		problems = append(problems, "unknown sort "+req.Sort)
	}
	data := map[string]any{"Q": req.Q, "Statuses": statuses, "Chosen": req.Statuses, "Sort": req.Sort}
	if len(problems) > 0 {
		data["Error"] = strings.Join(problems, "; ")
		return s.render(c, http.StatusBadRequest, "search", data)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	res, err := s.cfg.Search.Search(ctx, req)
	switch {
	case errors.Is(err, searchindex.ErrBadCursor):
		data["Error"] = "That page link is no longer valid; start the search again."
	case err != nil:
		s.cfg.Log.Warn("console search failed", "error", err.Error())
		data["Error"] = "Search cannot answer right now (the search index is unavailable). Try again in a moment."
	default:
		data["Result"] = res
		if res.NextCursor != nil {
			next := c.QueryParams()
			next.Set("cursor", *res.NextCursor)
			data["Next"] = "/search?" + next.Encode()
		}
	}
	return s.render(c, http.StatusOK, "search", data)
}

// --- projectors

func (s *Server) projectorsPage(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	data := map[string]any{}
	st, err := rebuild.ReadStatus(ctx, s.cfg.Clients, s.statusOptions())
	if err != nil {
		data["Error"] = "Kafka cannot answer right now: " + err.Error()
	} else {
		data["Status"] = st
		s.lag.add(time.Now(), st.Groups)
	}
	if s.cfg.Clients.Pool != nil {
		if rs, err := relay.ReadStatus(ctx, s.cfg.Clients.Pool); err != nil {
			data["RelayError"] = err.Error()
		} else {
			data["Relay"] = rs
		}
	}
	fresh := map[string]freshness{}
	for target, base := range s.cfg.Projectors {
		fresh[s.cfg.Groups[target]] = readFreshness(ctx, s.cfg.HTTP, base)
	}
	data["Freshness"] = fresh
	data["Charts"] = s.lag.charts()
	return s.render(c, http.StatusOK, "projectors", data)
}

// --- parked events

func (s *Server) parkedPage(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	type model struct {
		Target rebuild.Target
		Events any
		Error  string
	}
	var models []model
	for _, t := range []rebuild.Target{rebuild.Orders, rebuild.Search} {
		evs, err := rebuild.ListParked(ctx, s.cfg.Clients, t, s.cfg.Alias, 200)
		m := model{Target: t, Events: evs}
		if err != nil {
			m.Error = err.Error()
		}
		models = append(models, m)
	}
	return s.render(c, http.StatusOK, "parked", map[string]any{"Models": models, "Done": c.QueryParam("done"), "Failed": c.QueryParam("failed")})
}

func (s *Server) replay(c echo.Context) error {
	target, err := rebuild.ParseTarget(c.Param("target"))
	if err != nil {
		return &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "No such read model."}
	}
	order := c.Param("order")
	s.action(c, "replay parked events", "read_model", target, "order_id", order)
	ctx, cancel := context.WithTimeout(c.Request().Context(), 30*time.Second)
	defer cancel()
	answer, err := rebuild.ReplayParked(ctx, s.cfg.HTTP, s.cfg.Projectors[target], currentSession(c).Token, order)
	if err != nil {
		return c.Redirect(http.StatusSeeOther, "/parked?failed="+url.QueryEscape(fmt.Sprintf("Replay of %s in %s failed: %v", order, target, err)))
	}
	return c.Redirect(http.StatusSeeOther, "/parked?done="+url.QueryEscape(fmt.Sprintf("Replayed %s in %s: %s", order, target, answer)))
}

// --- rebuild and verify

func (s *Server) rebuildPage(c echo.Context) error {
	return s.render(c, http.StatusOK, "rebuild", map[string]any{"Jobs": s.jobs.list()})
}

func (s *Server) startRebuild(c echo.Context) error {
	target, err := rebuild.ParseTarget(c.FormValue("target"))
	if err != nil {
		return &pageError{Status: http.StatusBadRequest, Title: "Choose a read model", Message: "Rebuild orders or search."}
	}
	o := rebuild.Options{Target: target, Topic: s.cfg.Topic, Alias: s.cfg.Alias, LiveGroup: s.cfg.Groups[target],
		Backfill: c.FormValue("backfill") == "on", CatchUpLag: 1000}
	s.action(c, "rebuild", "read_model", target, "backfill", o.Backfill)
	return s.startJob(c, "rebuild "+string(target), func(ctx context.Context, j *job) error {
		res, err := rebuild.Rebuild(ctx, s.cfg.Clients, o, j)
		j.setResult(res)
		if err != nil {
			return err
		}
		// Then check what was built against the event store.
		report, err := rebuild.VerifyTarget(ctx, s.cfg.Clients, target, s.cfg.Alias, j)
		j.setReport(report)
		return err
	})
}

func (s *Server) startVerify(c echo.Context) error {
	target, err := rebuild.ParseTarget(c.FormValue("target"))
	if err != nil {
		return &pageError{Status: http.StatusBadRequest, Title: "Choose a read model", Message: "Verify orders or search."}
	}
	s.action(c, "verify", "read_model", target)
	return s.startJob(c, "verify "+string(target), func(ctx context.Context, j *job) error {
		report, err := rebuild.VerifyTarget(ctx, s.cfg.Clients, target, s.cfg.Alias, j)
		j.setReport(report)
		return err
	})
}

// startJob runs work as a job of the signed-in operator and shows its page (409 while one of the same
// kind runs).
func (s *Server) startJob(c echo.Context, kind string, work func(ctx context.Context, j *job) error) error {
	j, err := s.jobs.start(kind, principal(c).Subject, work)
	if err != nil {
		return &pageError{Status: http.StatusConflict, Title: "Already running", Message: err.Error()}
	}
	return c.Redirect(http.StatusSeeOther, "/jobs/"+j.ID)
}

func (s *Server) jobPage(c echo.Context) error {
	j := s.jobs.get(c.Param("id"))
	if j == nil {
		return &pageError{Status: http.StatusNotFound, Title: "Not found", Message: "No such job (jobs are kept until the console restarts)."}
	}
	return s.render(c, http.StatusOK, "job", map[string]any{"Job": j.view()})
}

func (s *Server) jobJSON(c echo.Context) error {
	j := s.jobs.get(c.Param("id"))
	if j == nil {
		return c.JSON(http.StatusNotFound, map[string]string{"error": "no such job"})
	}
	return c.JSON(http.StatusOK, j.view())
}

package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Outcome is what a client knows of a command after its answer (or lack of one).
type Outcome string

const (
	// OK: a 2xx answer. The command's event must be in the store exactly once.
	OK Outcome = "ok"
	// Failed: a definite 4xx refusal. The command must have recorded nothing.
	Failed Outcome = "failed"
	// Unknown: a timeout, a 5xx, a connection broken after the request was sent. The command may
	// have been recorded, at most once.
	Unknown Outcome = "unknown"
	// Refused: the connection could not be made, so the request was never sent (the command API was
	// down). Like Failed, it must have recorded nothing.
	Refused Outcome = "refused"
)

// Classify turns an HTTP exchange into an outcome: err is the client's error (nil when an answer
// arrived), status the answer's status.
func Classify(status int, err error) Outcome {
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return Refused // no connection: nothing was sent
		}
		return Unknown
	}
	switch {
	case status >= 200 && status < 300:
		return OK
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout:
		return Failed // 429 too: refused before it was handled (the workload sends it again)
	}
	return Unknown
}

// ErrUnauthorized: the command API refused the client's credentials (401 or 403): the suite cannot
// run, and must not pass with nothing recorded.
var ErrUnauthorized = errors.New("the command API refused the credentials (set ORDERS_TOKEN, or see ordersctl token)")

// TokenSource gives the bearer token for the API's Authorization header ("" for none).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
	// Describe says where tokens come from, for the report.
	Describe() string
}

// DefaultTokens is where the suite's token comes from: ORDERS_TOKEN when set; else `ordersctl token
// --sub chaos --role staff` when that command exists (it is refreshed every few minutes); else none.
func DefaultTokens(getenv func(string) string, ordersctl string) TokenSource {
	if t := strings.TrimSpace(getenv("ORDERS_TOKEN")); t != "" {
		return staticToken(t)
	}
	return &commandToken{path: ordersctl, args: []string{"token", "--sub", "chaos", "--role", "staff"}, ttl: 5 * time.Minute}
}

type staticToken string

func (t staticToken) Token(context.Context) (string, error) { return string(t), nil }
func (t staticToken) Describe() string                      { return "ORDERS_TOKEN" }

// commandToken runs a command for a token; a command that does not exist or fails the first time
// means the API needs none (no header is sent).
type commandToken struct {
	path string
	args []string
	ttl  time.Duration

	mu      sync.Mutex
	none    string // why there is no token (the first run failed)
	token   string
	fetched time.Time
}

func (c *commandToken) Token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.none != "" {
		return "", nil
	}
	if c.token != "" && time.Since(c.fetched) < c.ttl {
		return c.token, nil
	}
	first := c.token == "" // neither a token nor a failure yet
	tok, err := c.run(ctx)
	switch {
	case err == nil:
		c.token, c.fetched = tok, time.Now()
		return tok, nil
	case first:
		c.none = err.Error()
		return "", nil
	}
	return "", fmt.Errorf("refresh token: %w", err)
}

func (c *commandToken) run(ctx context.Context) (string, error) {
	if _, err := os.Stat(c.path); err != nil {
		return "", fmt.Errorf("%s not found", c.path)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.path, c.args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		why, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		if len(why) > 120 {
			why = why[:120] + "..."
		}
		return "", fmt.Errorf("`%s %s`: %w: %s", filepath.Base(c.path), strings.Join(c.args, " "), err, why)
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" || strings.ContainsAny(tok, " \n") {
		return "", fmt.Errorf("%s %s printed no single token", c.path, strings.Join(c.args, " "))
	}
	return tok, nil
}

func (c *commandToken) Describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.token != "":
		return "`ordersctl " + strings.Join(c.args, " ") + "`"
	case c.none != "":
		return "none (no ORDERS_TOKEN; " + c.none + ")"
	}
	return "not asked yet"
}

// Client sends commands to the command API.
type Client struct {
	Base   string
	HTTP   *http.Client
	Tokens TokenSource
}

// NewClient returns a client of the command API at base with a per-request timeout.
func NewClient(base string, tokens TokenSource, timeout time.Duration) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Client{Base: base, Tokens: tokens, HTTP: &http.Client{Timeout: timeout, Transport: tr}}
}

// Answer is one HTTP exchange.
type Answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Outcome Outcome
	Err     error
}

// Send sends one request and classifies its outcome. It fails with ErrUnauthorized on 401 and 403.
func (c *Client) Send(ctx context.Context, method, path string, body []byte, header map[string]string) Answer {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return Answer{Outcome: Failed, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Actor", "chaos")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if c.Tokens != nil {
		tok, err := c.Tokens.Token(ctx)
		if err != nil {
			return Answer{Outcome: Refused, Err: err} // nothing sent
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{Outcome: Classify(0, err), Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	a := Answer{Status: res.StatusCode, Header: res.Header, Body: raw, Outcome: Classify(res.StatusCode, err), Err: err}
	if res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden {
		a.Err = fmt.Errorf("%w: %s %s answered %d: %s", ErrUnauthorized, method, path, res.StatusCode, strings.TrimSpace(string(raw)))
	}
	return a
}

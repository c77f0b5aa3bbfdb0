package apispec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// The servers docs/openapi.yaml names for each API: a checked request is validated as if sent there,
// so an operation of the other API (GET /orders sent to the command API) matches nothing.
const (
	CommandServer = "http://127.0.0.1:8080"
	QueryServer   = "http://127.0.0.1:8081"
)

// The spec is parsed once per test binary: building the validator takes a while.
var (
	loadMu    sync.Mutex
	loaded    = map[string]validator.Validator{}
	validates sync.Mutex // validation runs one at a time (the validator's caches are shared)
)

func load(path string) (validator.Validator, error) {
	loadMu.Lock()
	defer loadMu.Unlock()
	if v, ok := loaded[path]; ok {
		return v, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Strict server matching: an operation is found only on the server it names. Formats are asserted
	// (uuid, date-time, email): they are part of what the servers accept.
	v, errs := validator.NewValidator(doc, config.WithStrictServerMatching(), config.WithFormatAssertions())
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %v", path, errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %s", path, describe(verrs))
	}
	loaded[path] = v
	return v, nil
}

// Client returns an HTTP client whose every request and answer is checked against the OpenAPI document
// at specPath, as if the server under test were server (CommandServer, QueryServer). It fails t when
//   - an answer does not match the document (undeclared status, body or header not as described);
//   - the server accepted (answered below 400) a request the document forbids;
//   - the server refused with 400 a request the document allows, unless for a reason the document says
//     it cannot express (a cursor the server did not give out: code invalid_cursor; a date that does
//     not exist).
//
// So the document says exactly what the servers enforce, and drift fails the tests that exercise it.
func Client(t testing.TB, specPath, server string) *http.Client {
	t.Helper()
	v, err := load(specPath)
	if err != nil {
		t.Fatalf("apispec: %v", err)
	}
	base, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &checker{t: t, v: v, server: base, next: http.DefaultTransport}}
}

type checker struct {
	t      testing.TB
	v      validator.Validator
	server *url.URL
	next   http.RoundTripper
}

// allowedRefusals are 400 codes a request the document allows may still get, for what a schema cannot
// say (docs/openapi.yaml names them): a cursor the server did not give out, version and as_of together,
// and time travel asked of the query API (one GET /orders/{id} operation describes both APIs).
var allowedRefusals = map[string]bool{"invalid_cursor": true, "conflicting_parameters": true, "not_supported_here": true}

func (c *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	as := func() *http.Request { // the request as the document sees it: sent to the document's server
		r := req.Clone(req.Context())
		u := *req.URL
		u.Scheme, u.Host = c.server.Scheme, c.server.Host
		r.URL, r.Host = &u, c.server.Host
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}
	validates.Lock()
	reqOK, reqErrs := c.v.ValidateHttpRequestSync(as())
	validates.Unlock()

	res, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resBody, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(resBody))

	what := req.Method + " " + req.URL.RequestURI()
	// A route or method docs/openapi.yaml does not have: no answer to check it against. (A request to a
	// known operation with a bad path parameter is still one whose answer is checked.)
	known := !slices.ContainsFunc(reqErrs, func(e *verrors.ValidationError) bool {
		return e.IsPathMissingError() || e.IsOperationMissingError()
	})
	switch {
	case !reqOK && res.StatusCode < 400:
		c.t.Errorf("apispec: %s: the server answered %d to a request docs/openapi.yaml forbids: %s", what, res.StatusCode, describe(reqErrs))
	case reqOK && res.StatusCode == http.StatusBadRequest && !allowedRefusals[problemCode(resBody)]:
		c.t.Errorf("apispec: %s: the server refused (400 %s) a request docs/openapi.yaml allows", what, problemCode(resBody))
	}
	if known {
		check := *res
		check.Body = io.NopCloser(bytes.NewReader(resBody))
		validates.Lock()
		resOK, resErrs := c.v.ValidateHttpResponse(as(), &check)
		validates.Unlock()
		if !resOK {
			c.t.Errorf("apispec: %s: the answer %d does not match docs/openapi.yaml: %s\n%.500s", what, res.StatusCode, describe(resErrs), resBody)
		}
	}
	return res, nil
}

func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code
}

func describe(errs []*verrors.ValidationError) string {
	var out []string
	for _, e := range errs {
		s := e.Message
		if e.Reason != "" {
			s += " (" + e.Reason + ")"
		}
		for _, f := range e.SchemaValidationErrors {
			s += "; " + f.Reason
			if f.FieldPath != "" {
				s += " at " + f.FieldPath
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, " | ")
}

package apispec

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recorder keeps the errors Client reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// The checker catches each kind of drift between docs/openapi.yaml and a server.
func TestClientCatchesDrift(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz" && r.URL.Query().Get("bad") != "":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status": 5}`))
		case r.URL.Path == "/healthz":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status": "ok"}`))
		case strings.HasPrefix(r.URL.Path, "/orders/not-a-uuid"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"oops": 1}`))
		case strings.HasSuffix(r.URL.Path, "/events"):
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Bad Request","status":400,"code":"invalid_limit"}`))
		default:
			w.WriteHeader(204)
		}
	}))
	defer fake.Close()
	tests := []struct {
		name, method, path, body, want string
	}{
		{"a good exchange", "GET", "/healthz", "", ""},
		{"an answer unlike the document", "GET", "/healthz?bad=1", "", "does not match"},
		{"a refusal of what the document allows", "GET", "/orders/01936f3e-0000-7000-8000-000000000001/events?limit=5", "", "refused (400 invalid_limit)"},
		{"an operation of the other server", "GET", "/orders", "", "forbids"},
		{"an answer unlike the document, to a bad path parameter", "GET", "/orders/not-a-uuid/events", "", "does not match"},
		{"a body the document forbids, accepted", "POST", "/orders/01936f3e-0000-7000-8000-000000000001/cancellation", `{"reason": ""}`, "forbids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			c := Client(rec, "../../docs/openapi.yaml", CommandServer)
			req, _ := http.NewRequest(tt.method, fake.URL+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer x")
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			got := strings.Join(rec.errs, "\n")
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("reported %q, want %q", got, tt.want)
			}
		})
	}
}

package testenv

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	opensearchgo "github.com/opensearch-project/opensearch-go/v2"
	tcopensearch "github.com/testcontainers/testcontainers-go/modules/opensearch"
)

var opensearch = &endpoint{envVar: "OPENSEARCH_URL", start: func(ctx context.Context) (string, error) {
	c, err := tcopensearch.Run(ctx, "opensearchproject/opensearch:2.19.3")
	if err != nil {
		return "", err
	}
	return c.Address(ctx)
}}

// OpenSearchURL returns the OpenSearch base URL.
func OpenSearchURL(t testing.TB) string {
	t.Helper()
	return strings.TrimRight(opensearch.get(t), "/")
}

// IndexPrefix returns a name of the test's own to prefix its indexes and aliases with; every index and
// alias starting with it is deleted when the test ends.
func IndexPrefix(t testing.TB) string {
	t.Helper()
	base := OpenSearchURL(t)
	prefix := Name(t)
	t.Cleanup(func() {
		if t.Failed() && keep() {
			t.Logf("testenv: kept indexes %s*", prefix)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, base+"/"+prefix+"*?expand_wildcards=all", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("testenv: delete indexes %s*: %v", prefix, err)
			return
		}
		res.Body.Close()
		if res.StatusCode >= 300 && res.StatusCode != http.StatusNotFound {
			t.Errorf("testenv: delete indexes %s*: HTTP %d", prefix, res.StatusCode)
		}
	})
	return prefix
}

func keep() bool { return os.Getenv("TESTENV_KEEP") == "1" }

// OpenSearch returns an opensearch-go client on OPENSEARCH_URL.
func OpenSearch(t testing.TB) *opensearchgo.Client {
	t.Helper()
	c, err := opensearchgo.NewClient(opensearchgo.Config{Addresses: []string{OpenSearchURL(t)}})
	if err != nil {
		t.Fatalf("testenv: opensearch client: %v", err)
	}
	return c
}

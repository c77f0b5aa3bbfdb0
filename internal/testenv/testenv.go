// Package testenv gives integration tests real, isolated servers: each test gets its own Postgres
// database, its own Kafka topics and its own OpenSearch index names, so tests run in parallel and again
// and again without cleaning up after each other.
//
// The servers come from DATABASE_URL, KAFKA_BROKERS and OPENSEARCH_URL (what `make up` prints). When a
// variable is not set and a Docker engine answers, the server is started once per test binary with
// testcontainers-go. Otherwise the test fails with the command to run: a missing server is never a skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

const howToStart = "start the local stack with `make up` and export what it prints (`eval \"$(make -s env)\"`), or run the tests with `make test`"

// endpoint resolves one server: the environment variable first, then a container when Docker answers.
type endpoint struct {
	envVar string
	start  func(ctx context.Context) (string, error)

	once  sync.Once
	value string
	err   error
}

func (e *endpoint) get(t testing.TB) string {
	t.Helper()
	e.once.Do(func() {
		if v := strings.TrimSpace(os.Getenv(e.envVar)); v != "" {
			e.value = v
			return
		}
		if !dockerAvailable() {
			e.err = fmt.Errorf("%s is not set and no Docker engine is reachable: %s", e.envVar, howToStart)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		e.value, e.err = e.start(ctx)
		if e.err != nil {
			e.err = fmt.Errorf("%s is not set and starting a container failed: %w", e.envVar, e.err)
		}
	})
	if e.err != nil {
		t.Fatalf("testenv: %v", e.err)
	}
	return e.value
}

// dockerAvailable reports whether testcontainers-go can reach a healthy Docker engine. Older
// testcontainers versions panic without an engine; that counts as "no".
func dockerAvailable() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	p, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.Health(ctx) == nil
}

var unsafeName = regexp.MustCompile(`[^a-z0-9]+`)

// Name derives a short unique lower-case name from the test's name, for databases, topics and indexes:
// readable in a listing, and unique across runs and parallel tests.
func Name(t testing.TB) string {
	t.Helper()
	base := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(base) > 40 {
		base = base[len(base)-40:]
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	return "t_" + strings.Trim(base, "_") + "_" + hex.EncodeToString(b[:])
}

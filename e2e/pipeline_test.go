//go:build integration

package e2e_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	commandapi "github.com/orders-oss/orders/services/command/httpapi"
	queryapi "github.com/orders-oss/orders/services/query/httpapi"
)

// pipeline is the whole write-to-read path in this process, on the test's own database, topic and
// index: the command and query APIs (tokens of issuer), the relay, and both projectors as their
// services run them. Everything stops when the test ends.
type pipeline struct {
	pool           *pgxpool.Pool
	osc            *opensearch.Client
	issuer         *authtest.Issuer
	command, query *httptest.Server
	topic          string
	// groups are the projectors' consumer groups: search, then orders.
	groups [2]string
}

// startPipeline starts it; with trace, the projectors make a span per traced record (as the services
// do, when tracing is on).
func startPipeline(t *testing.T, trace bool) *pipeline {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{pool: testenv.Postgres(t), osc: testenv.OpenSearch(t), issuer: authtest.New(t)}
	if err := eventstore.Migrate(ctx, p.pool); err != nil {
		t.Fatal(err)
	}
	gen, err := readmodel.Ensure(ctx, p.pool)
	if err != nil {
		t.Fatal(err)
	}
	brokers := testenv.KafkaBrokers(t)
	p.topic = testenv.Topic(t, 3)
	prefix := testenv.IndexPrefix(t)
	alias := prefix + "-orders"

	keys := testenv.Keyring(t, p.pool)
	p.command = httptest.NewServer(commandapi.New(commandapi.Config{Commands: &command.Service{Store: eventstore.New(p.pool), Keys: keys, MaxRetries: 5},
		Log: quiet, BodyLimit: "64KB", Ready: p.pool.Ping, Auth: p.issuer.Auth}))
	t.Cleanup(p.command.Close)
	p.query = httptest.NewServer(queryapi.New(queryapi.Config{Search: searchindex.New(p.osc, alias), Orders: p.pool, MinVersionWait: 10 * time.Second,
		Log: quiet, Ready: func(context.Context) error { return nil }, Auth: p.issuer.Auth}))
	t.Cleanup(p.query.Close)

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	r := relay.New(relay.Config{Pool: p.pool, Client: producer, Topic: p.topic, Log: quiet})

	ix := searchindex.New(p.osc, alias)
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	sparking, err := searchindex.NewParking(ctx, p.osc, searchindex.ParkingIndex(alias))
	if err != nil {
		t.Fatal(err)
	}
	tparking, err := readmodel.NewParking(ctx, p.pool, gen)
	if err != nil {
		t.Fatal(err)
	}
	p.groups = [2]string{testenv.Name(t) + "-search", testenv.Name(t) + "-orders"}
	loops := []*projection.Loop{
		{Handler: searchindex.Handler{Index: ix, Keys: keys}, Parking: sparking, Group: p.groups[0]},
		{Handler: readmodel.Handler{Pool: p.pool, OnGeneration: tparking.Use, Keys: keys}, Parking: tparking, Group: p.groups[1]},
	}
	done := make(chan struct{}, len(loops)+1)
	go func() { _ = r.Run(ctx, relay.DefaultPolling); done <- struct{}{} }()
	for _, l := range loops {
		consumer, err := kgo.NewClient(projection.ConsumerOptions(brokers, p.topic, l.Group)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(consumer.Close)
		l.Client, l.Topic, l.Log, l.Metrics, l.Trace = consumer, p.topic, quiet, projection.NewMetrics(), trace
		go func() { _ = l.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range len(loops) + 1 {
			<-done
		}
	})
	return p
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"net/http"
	"net/http/httptest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/services/command/httpapi"
)

type searchConfig struct {
	DatabaseURL   string
	Load          time.Duration
	Brokers       []string
	OpenSearchURL string
	Events        int
	Rounds        int
	Out           string
}

// benchSearch measures the search projector consuming a topic of n events (4 per order) into a fresh
// index, beside a raw bulk of the same final documents with the same external versions.
func benchSearch(ctx context.Context, cfg searchConfig, stdout io.Writer) error {
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.OpenSearchURL}})
	if err != nil {
		return err
	}
	stamp := time.Now().UnixNano()
	topic := fmt.Sprintf("bench.search.%d", stamp)
	client, adm, deleteTopic, err := newTopic(ctx, cfg.Brokers, topic, 6)
	if err != nil {
		return err
	}
	defer deleteTopic()

	recs, finals, err := produceEvents(ctx, client, topic, cfg.Events, nil)
	if err != nil {
		return err
	}

	sealed, err := newSealedTopic(ctx, cfg, adm, client, topic)
	if err != nil {
		return err
	}
	defer sealed.close()

	// project consumes a topic of n events into a fresh index (a fresh group) and returns the events
	// per second.
	project := func(topic, prefix string, n int, keys projection.Keys) (float64, error) {
		ix := searchindex.New(osc, prefix+"-orders")
		if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
			return 0, err
		}
		parking, err := searchindex.NewParking(ctx, osc, prefix+"-orders-parked")
		if err != nil {
			return 0, err
		}
		consumer, err := kgo.NewClient(projection.ConsumerOptions(cfg.Brokers, topic, prefix)...)
		if err != nil {
			return 0, err
		}
		defer consumer.Close()
		return drainRate(ctx, &projection.Loop{Client: consumer, Handler: searchindex.Handler{Index: ix, Keys: keys}, Parking: parking,
			Topic: topic, Group: prefix, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: projection.NewMetrics()}, n)
	}

	var projRates, sealedRates, rawRates []float64
	for round := range cfg.Rounds {
		prefix := fmt.Sprintf("bench-search-%d-%d", stamp, round)
		rate, err := project(topic, prefix, len(recs), nil)
		if err != nil {
			return err
		}
		projRates = append(projRates, rate)
		if rate, err = project(sealed.topic, prefix+"-sealed", sealed.events, sealed.keys()); err != nil {
			return fmt.Errorf("sealed: %w", err)
		}
		sealedRates = append(sealedRates, rate)

		// The baseline: the same final documents, bulk-indexed with the same external versions into a
		// fresh index, 500 documents a request (about what a 2000-event batch writes).
		raw := searchindex.New(osc, prefix+"-raw")
		if err := raw.Ensure(ctx, prefix+"-raw-v1"); err != nil {
			return err
		}
		start := time.Now()
		for i := 0; i < len(finals); i += 500 {
			w, err := raw.Write(ctx, finals[i:min(i+500, len(finals))], false)
			if err != nil {
				return err
			}
			if len(w.Failures) > 0 {
				return fmt.Errorf("raw bulk failures: %v", w.Failures)
			}
		}
		rawRates = append(rawRates, float64(len(recs))/time.Since(start).Seconds())
		fmt.Fprintf(stdout, "round %d: projector %.0f events/s, with personal data sealed %.0f events/s, raw bulk of the same documents %.0f events/s (%d documents)\n",
			round+1, projRates[round], sealedRates[round], rawRates[round], len(finals))
		res, err := opensearchapi.IndicesDeleteRequest{Index: []string{prefix + "*"}}.Do(ctx, osc)
		if err == nil {
			res.Body.Close()
		}
	}
	fresh, err := searchFreshness(ctx, cfg, osc, topic, stamp, stdout)
	if err != nil {
		return err
	}
	pm, sm, rm := loadgen.Median(projRates), loadgen.Median(sealedRates), loadgen.Median(rawRates)
	cluster, err := openSearchFacts(ctx, osc)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Search projector

Measured %s on %s (median of %d rounds), %s, a 6-partition topic.
Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench search`"+`). %d events (placed, item added, paid,
shipped for %d orders) consumed by a fresh consumer group into a fresh index, beside a raw bulk of the
same %d final documents with the same external versions (500 a request).

| what | events per second |
|---|---|
| projector-search (poll, decode, fold with order.Evolve, versioned bulk, commit) | %.0f |
| baseline: raw bulk of the same documents | %.0f |
| projector / raw | %.0f%% (aim: 60%%) |
| the same events with their personal data sealed (schema version 2, as the command service writes them: the projector reads the customers' keys, a cold cache each round, and opens name, email and address) | %.0f |
| sealed / plain text | %.0f%% |

Freshness under steady load (POST /orders at 8 clients for %s through the in-process command API, the
relay and the projector running): %s
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, cfg.Rounds, cluster, len(recs), len(finals), len(finals), pm, rm, 100*pm/rm, sm, 100*sm/pm, cfg.Load, fresh)
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "search", section)
}

// searchFreshness runs the whole write path into the search index under steady load and reads the
// projector's freshness histogram (event commit to index write).
func searchFreshness(ctx context.Context, cfg searchConfig, osc *opensearch.Client, topic string, stamp int64, stdout io.Writer) (string, error) {
	dbURL, drop, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return "", err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return "", err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	producer, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return "", err
	}
	defer producer.Close()
	prefix := fmt.Sprintf("bench-fresh-%d", stamp)
	ix := searchindex.New(osc, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		return "", err
	}
	defer func() {
		if res, err := (opensearchapi.IndicesDeleteRequest{Index: []string{prefix + "*"}}).Do(context.WithoutCancel(ctx), osc); err == nil {
			res.Body.Close()
		}
	}()
	parking, err := searchindex.NewParking(ctx, osc, prefix+"-orders-parked")
	if err != nil {
		return "", err
	}
	// Start the consumer at the topic's end: the drain rounds' records are not part of this.
	consumer, err := kgo.NewClient(append(projection.ConsumerOptions(cfg.Brokers, topic, prefix),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
	if err != nil {
		return "", err
	}
	defer consumer.Close()
	// The command API seals personal data with these keys; the projector opens it with them.
	keys := benchKeys(pool)
	m := projection.NewMetrics()
	loop := &projection.Loop{Client: consumer, Handler: searchindex.Handler{Index: ix, Keys: keys}, Parking: parking, Topic: topic, Group: prefix, Log: quiet, Metrics: m}
	r := relay.New(relay.Config{Pool: pool, Client: producer, Topic: topic, Log: quiet})
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = r.Run(rctx, relay.DefaultPolling) }()
	go func() { _ = loop.Run(rctx) }()
	time.Sleep(2 * time.Second) // let the consumer join its group

	api := httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5}, Log: quiet, BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer api.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	res := loadgen.Run(ctx, 8, cfg.Load, func(ctx context.Context, w, _ int) error {
		return postOrder(ctx, client, api.URL, tokenFor(w), placeBody)
	})
	if res.Errors > 0 {
		return "", fmt.Errorf("freshness load: %d errors, first %v", res.Errors, res.FirstErr)
	}
	want := float64(res.Ops)
	for deadline := time.Now().Add(60 * time.Second); m.Seen() < want && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	// A freshness of what was not projected would be no figure: every answered command's event is
	// applied, none parked, or the run fails.
	if parked, err := parkedEvents(m); err != nil || m.Seen() < want || parked > 0 {
		return "", fmt.Errorf("freshness: %.0f of %.0f events projected in 60 s, %.0f parked", m.Seen(), want, parked)
	}
	h := gatherHistogram(m.Registry, "projector_freshness_seconds")
	out := fmt.Sprintf("%.0f orders/s placed; commit to index write p50 ≤ %s, p99 ≤ %s (histogram bucket bounds; %d events projected for %d answered commands)",
		res.PerSecond(), quantile(nil, h, 0.5), quantile(nil, h, 0.99), int64(m.Seen()), res.Ops)
	fmt.Fprintln(stdout, "freshness:", out)
	return out, nil
}

// openSearchFacts describes the cluster as its nodes report it: "OpenSearch 2.19.3, 1 node (heap 512 MiB)".
func openSearchFacts(ctx context.Context, osc *opensearch.Client) (string, error) {
	res, err := opensearchapi.NodesInfoRequest{Metric: []string{"jvm"}}.Do(ctx, osc)
	if err != nil {
		return "", fmt.Errorf("nodes info: %w", err)
	}
	defer res.Body.Close()
	if res.IsError() {
		return "", fmt.Errorf("nodes info: %s", res.Status())
	}
	var info struct {
		Nodes map[string]struct {
			Version string `json:"version"`
			JVM     struct {
				Mem struct {
					HeapMax int64 `json:"heap_max_in_bytes"`
				} `json:"mem"`
			} `json:"jvm"`
		} `json:"nodes"`
	}
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
		return "", fmt.Errorf("nodes info: %w", err)
	}
	var versions, heaps []string
	for _, n := range info.Nodes {
		versions = append(versions, n.Version)
		heaps = append(heaps, fmt.Sprintf("%d MiB", n.JVM.Mem.HeapMax>>20))
	}
	slices.Sort(versions)
	slices.Sort(heaps)
	plural := "s"
	if len(info.Nodes) == 1 {
		plural = ""
	}
	return fmt.Sprintf("OpenSearch %s, %d node%s (heap %s)", strings.Join(slices.Compact(versions), "/"), len(info.Nodes), plural,
		strings.Join(slices.Compact(heaps), "/")), nil
}

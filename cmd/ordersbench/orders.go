package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/command/httpapi"
)

// benchEvents builds the records of n events for a topic: n/4 orders, each placed, given an item,
// paid and shipped, with each order's final state. With seal nil the personal data is in plain text
// (schema version 1, as an older release wrote it): no key store is needed to read them. With seal,
// it is sealed with the customer's key that seal returns, as the command service writes it (schema
// version 2).
func benchEvents(topic string, n int, seal func(customerID string) (events.Sealer, error)) ([]*kgo.Record, []api.Order, error) {
	var recs []*kgo.Record
	var finals []api.Order
	now := time.Now().UTC().Truncate(time.Microsecond)
	for o := 0; o < n/4; o++ {
		id := uuid.Must(uuid.NewV7()).String()
		payloads := []events.Payload{
			events.OrderPlaced{Customer: events.Customer{ID: fmt.Sprintf("cus_%d", o%1000), Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")},
				ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"}),
				Currency:        "EUR", Items: []events.LineItem{{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}}},
			events.OrderItemAdded{Item: events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 250}},
			events.PaymentConfirmed{Amount: 4248, Currency: "EUR", Reference: "pay"},
			events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: fmt.Sprintf("JD%08d", o)}}},
		}
		var st order.State
		for v, p := range payloads {
			stored, version := p, 1
			if seal != nil {
				version = events.LatestVersion()
				sealer, err := seal(fmt.Sprintf("cus_%d", o%1000))
				if err != nil {
					return nil, nil, err
				}
				if stored, err = events.SealAt(p, version, id, sealer); err != nil {
					return nil, nil, err
				}
			}
			typ, sv, data, err := events.EncodeAt(stored, version)
			if err != nil {
				return nil, nil, err
			}
			env := events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: int64(v + 1), Type: typ, SchemaVersion: sv,
				OccurredAt: now, RecordedAt: now, Data: data, Metadata: events.Metadata{CorrelationID: "c", CausationID: "r", Actor: "bench"}}
			rec, err := relay.Record(topic, env)
			if err != nil {
				return nil, nil, err
			}
			recs = append(recs, rec)
			st = order.Evolve(st, env, p)
		}
		final, err := st.View(nil)
		if err != nil {
			return nil, nil, err
		}
		finals = append(finals, final)
	}
	return recs, finals, nil
}

// newTopic makes a producer (acks=all, 5 ms linger) on brokers, its admin client, and topic with
// partitions partitions; done deletes the topic (best effort) and closes the client.
func newTopic(ctx context.Context, brokers []string, topic string, partitions int32) (client *kgo.Client, adm *kadm.Client, done func(), err error) {
	client, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, nil, nil, err
	}
	adm = kadm.NewClient(client)
	if _, err := relay.EnsureTopic(ctx, adm, topic, partitions, -1); err != nil {
		client.Close()
		return nil, nil, nil, err
	}
	return client, adm, func() {
		_, _ = adm.DeleteTopics(context.WithoutCancel(ctx), topic) // best effort
		client.Close()
	}, nil
}

// produceEvents produces the records of n events (benchEvents, with seal) to topic and returns them
// with each order's final state.
func produceEvents(ctx context.Context, client *kgo.Client, topic string, n int, seal func(customerID string) (events.Sealer, error)) ([]*kgo.Record, []api.Order, error) {
	recs, finals, err := benchEvents(topic, n, seal)
	if err != nil {
		return nil, nil, err
	}
	if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, nil, fmt.Errorf("produce: %w", err)
	}
	return recs, finals, nil
}

// sealedTopic holds the bench's orders with their personal data sealed, as the command service writes
// them (schema version 2), on a topic of their own, and the customers' keys in a database of their own.
type sealedTopic struct {
	topic  string
	events int
	// keys is a keyring on those keys with a cold cache, as in a fresh process.
	keys  func() *pii.Keyring
	close func()
}

func newSealedTopic(ctx context.Context, cfg searchConfig, adm *kadm.Client, client *kgo.Client, plain string) (_ *sealedTopic, err error) {
	var cleanup []func()
	t := &sealedTopic{topic: plain + ".sealed", close: func() {
		for _, f := range slices.Backward(cleanup) {
			f()
		}
	}}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if _, err := relay.EnsureTopic(ctx, adm, t.topic, 6, -1); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _, _ = adm.DeleteTopics(context.WithoutCancel(ctx), t.topic) })
	keysURL, drop, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, drop)
	pool, err := pgxpool.New(ctx, keysURL)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, pool.Close)
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	master, err := pii.ParseMasterKey([]byte(pii.NewMasterKeyText()))
	if err != nil {
		return nil, err
	}
	sealing := pii.New(pool, master, pii.Options{CacheTTL: time.Hour})
	recs, _, err := produceEvents(ctx, client, t.topic, cfg.Events, func(customerID string) (events.Sealer, error) {
		return sealing.Key(ctx, customerID)
	})
	if err != nil {
		return nil, err
	}
	t.events = len(recs)
	t.keys = func() *pii.Keyring { return pii.New(pool, master, pii.Options{}) }
	return t, nil
}

// scratchReadModel is a fresh database with the orders read model; done closes and drops it.
func scratchReadModel(ctx context.Context, url string) (pool *pgxpool.Pool, gen int, done func(), err error) {
	if pool, done, err = scratchPool(ctx, url, 0); err != nil {
		return nil, 0, nil, err
	}
	if gen, err = readmodel.Ensure(ctx, pool); err != nil {
		done()
		return nil, 0, nil, err
	}
	return pool, gen, done, nil
}

// drainRate runs loop until its metrics have seen n events and returns the events per second. A
// parked event fails the run: it was not projected, so the figure would not be of the work measured.
func drainRate(ctx context.Context, loop *projection.Loop, n int) (float64, error) {
	start := time.Now()
	for loop.Metrics.Seen() < float64(n) {
		if err := loop.RunOnce(ctx); err != nil {
			return 0, err
		}
		if time.Since(start) > 10*time.Minute {
			return 0, fmt.Errorf("projector: %v of %d events after 10 minutes", loop.Metrics.Seen(), n)
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	if parked, err := parkedEvents(loop.Metrics); err != nil || parked > 0 {
		return 0, fmt.Errorf("projector: %v events parked", parked)
	}
	return rate, nil
}

// parkedEvents reads the count of events the projector parked from its metrics.
func parkedEvents(m *projection.Metrics) (float64, error) {
	var d dto.Metric
	err := m.Parked.Write(&d)
	return d.GetCounter().GetValue(), err
}

// benchOrders measures projector-orders consuming a topic of n events into a fresh read model, beside
// raw batched upserts of the same final rows (the same statements, 1,250 orders a transaction: what a
// 5,000-event batch writes).
func benchOrders(ctx context.Context, cfg searchConfig, stdout io.Writer) error {
	stamp := time.Now().UnixNano()
	topic := fmt.Sprintf("bench.orders.%d", stamp)
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
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// project consumes a topic of n events into a fresh read model and returns the events per second.
	project := func(topic, group string, n int, keys projection.Keys) (float64, error) {
		pool, gen, done, err := scratchReadModel(ctx, cfg.DatabaseURL)
		if err != nil {
			return 0, err
		}
		defer done()
		parking, err := readmodel.NewParking(ctx, pool, gen)
		if err != nil {
			return 0, err
		}
		consumer, err := kgo.NewClient(projection.ConsumerOptions(cfg.Brokers, topic, group)...)
		if err != nil {
			return 0, err
		}
		defer consumer.Close()
		return drainRate(ctx, &projection.Loop{Client: consumer, Handler: readmodel.Handler{Pool: pool, Generation: gen, Keys: keys},
			Parking: parking, Topic: topic, Group: group, Log: quiet, Metrics: projection.NewMetrics()}, n)
	}

	var projRates, sealedRates, rawRates []float64
	for round := range cfg.Rounds {
		rate, err := project(topic, fmt.Sprintf("bench-orders-%d-%d", stamp, round), len(recs), nil)
		if err != nil {
			return err
		}
		projRates = append(projRates, rate)
		rate, err = project(sealed.topic, fmt.Sprintf("bench-orders-sealed-%d-%d", stamp, round), sealed.events, sealed.keys())
		if err != nil {
			return fmt.Errorf("sealed: %w", err)
		}
		sealedRates = append(sealedRates, rate)

		rate, err = func() (float64, error) {
			pool, gen, done, err := scratchReadModel(ctx, cfg.DatabaseURL)
			if err != nil {
				return 0, err
			}
			defer done()
			start := time.Now()
			for i := 0; i < len(finals); i += 1250 {
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					_, err := readmodel.Upsert(ctx, tx, gen, finals[i:min(i+1250, len(finals))], nil)
					return err
				})
				if err != nil {
					return 0, err
				}
			}
			return float64(len(recs)) / time.Since(start).Seconds(), nil
		}()
		if err != nil {
			return err
		}
		rawRates = append(rawRates, rate)
		fmt.Fprintf(stdout, "round %d: projector %.0f events/s, with personal data sealed %.0f events/s, raw upserts of the same rows %.0f events/s (%d orders)\n",
			round+1, projRates[round], sealedRates[round], rawRates[round], len(finals))
	}
	fresh, err := ordersFreshness(ctx, cfg, topic, stamp, stdout)
	if err != nil {
		return err
	}
	pm, sm, rm := loadgen.Median(projRates), loadgen.Median(sealedRates), loadgen.Median(rawRates)
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	pg, fsync, syncCommit, err := serverFacts(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## Orders table projector

Measured %s on %s (median of %d rounds), PostgreSQL %s with fsync=%s and synchronous_commit=%s, a
6-partition topic. Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench orders`"+`). %d events (placed,
item added, paid, shipped for %d orders) consumed by a fresh consumer group into a fresh read model,
beside raw batched upserts of the same %d final rows and their lines with the same statements (1,250
orders a transaction, what one 5,000-event batch writes).

| what | events per second |
|---|---|
| projector-orders (poll, decode, read rows, fold with order.Evolve, upsert rows + lines + positions in one transaction, commit) | %.0f |
| baseline: raw batched upserts of the same rows | %.0f |
| projector / raw | %.0f%% (aim: 50%%) |
| the same events with their personal data sealed (schema version 2, as the command service writes them: the projector reads the customers' keys, a cold cache each round, and opens name, email and address) | %.0f |
| sealed / plain text | %.0f%% |

Freshness under steady load (POST /orders at 8 clients for %s through the in-process command API, the
relay and the projector running): %s
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, cfg.Rounds, pg, fsync, syncCommit, len(recs), len(finals), len(finals), pm, rm, 100*pm/rm, sm, 100*sm/pm, cfg.Load, fresh)
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "orders", section)
}

// ordersFreshness runs the whole write path into the orders table under steady load and reads the
// projector's freshness histogram (event commit to the commit of its read-model transaction).
func ordersFreshness(ctx context.Context, cfg searchConfig, topic string, stamp int64, stdout io.Writer) (string, error) {
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
	gen, err := readmodel.Ensure(ctx, pool)
	if err != nil {
		return "", err
	}
	parking, err := readmodel.NewParking(ctx, pool, gen)
	if err != nil {
		return "", err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	producer, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
	if err != nil {
		return "", err
	}
	defer producer.Close()
	group := fmt.Sprintf("bench-orders-fresh-%d", stamp)
	consumer, err := kgo.NewClient(append(projection.ConsumerOptions(cfg.Brokers, topic, group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
	if err != nil {
		return "", err
	}
	defer consumer.Close()
	// The command API seals personal data with these keys; the projector opens it with them.
	keys := benchKeys(pool)
	m := projection.NewMetrics()
	loop := &projection.Loop{Client: consumer, Handler: readmodel.Handler{Pool: pool, Generation: gen, Keys: keys}, Parking: parking,
		Topic: topic, Group: group, Log: quiet, Metrics: m}
	r := relay.New(relay.Config{Pool: pool, Client: producer, Topic: topic, Log: quiet})
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = r.Run(rctx, relay.DefaultPolling) }()
	go func() { _ = loop.Run(rctx) }()
	time.Sleep(2 * time.Second) // let the consumer join its group

	srv := httptest.NewServer(httpapi.New(httpapi.Config{Commands: &command.Service{Store: eventstore.New(pool), Keys: keys, MaxRetries: 5}, Log: quiet, BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	res := loadgen.Run(ctx, 8, cfg.Load, func(ctx context.Context, w, _ int) error { return postOrder(ctx, hc, srv.URL, tokenFor(w), placeBody) })
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
	out := fmt.Sprintf("%.0f orders/s placed; commit to read-model commit p50 ≤ %s, p99 ≤ %s (histogram bucket bounds; %d events projected for %d answered commands)",
		res.PerSecond(), quantile(nil, h, 0.5), quantile(nil, h, 0.99), int64(m.Seen()), res.Ops)
	fmt.Fprintln(stdout, "freshness:", out)
	return out, nil
}

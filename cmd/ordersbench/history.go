package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/command/httpapi"
)

type historyConfig struct {
	DatabaseURL string
	Events      int           // events of the long orders (before the 99 that put them furthest from a snapshot)
	Every       int           // SNAPSHOT_EVERY of the service with snapshots
	Travel      int64         // the version time travel asks for
	Duration    time.Duration // the longest one measurement lasts
	Commands    int           // the most commands one measurement runs (each adds an event)
	Rounds      int
	Out         string
}

// benchHistory measures, in one run, the latency of GET /orders/{id} and of a command (PUT
// shipping-address) on an order of Events events through the command API (in-process, real Postgres),
// with snapshots and without, beside the same on a 1-event order; and time travel to version Travel.
// One client, one request at a time: these are latencies, not throughput.
func benchHistory(ctx context.Context, cfg historyConfig, stdout io.Writer) error {
	pool, done, err := scratchPool(ctx, cfg.DatabaseURL, 8)
	if err != nil {
		return err
	}
	defer done()
	if err := eventstore.Migrate(ctx, pool); err != nil {
		return err
	}
	fsync, syncCommit, err := durability(ctx, pool)
	if err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := eventstore.New(pool)
	// Two command services on one store: one loads from snapshots and takes them, the other folds every
	// load from the first event (SNAPSHOT_EVERY=0).
	keys := benchKeys(pool)
	snap := &command.Service{Store: store, Keys: keys, MaxRetries: 5, Snapshots: command.NewSnapshots(store, cfg.Every, 0, quiet).SealWith(keys)}
	plain := &command.Service{Store: store, Keys: keys, MaxRetries: 5}
	snapCtx, stopSnapshots := context.WithCancel(ctx)
	defer stopSnapshots()
	go snap.Snapshots.Run(snapCtx)
	withSnaps := httptest.NewServer(httpapi.New(httpapi.Config{Commands: snap, Log: quiet, BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer withSnaps.Close()
	without := httptest.NewServer(httpapi.New(httpapi.Config{Commands: plain, Log: quiet, BodyLimit: "256KB", Ready: pool.Ping, Auth: benchIssuer.Auth}))
	defer without.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	// The orders: three long ones, built through the service with snapshots (a snapshot every Every
	// events, as in production): one of exactly Events events (its latest snapshot at its version) and
	// two with Every-1 more (a load folds the most events it ever folds past a snapshot); and 1-event
	// orders, one per measured command.
	size := cfg.Events + cfg.Every - 1
	fmt.Fprintf(stdout, "building an order of %d events and two of %d...\n", cfg.Events, size)
	var exact string
	long := [2]string{}
	if exact, err = buildLongOrder(ctx, snap, cfg.Events); err != nil {
		return err
	}
	for i := range long {
		if long[i], err = buildLongOrder(ctx, snap, size); err != nil {
			return err
		}
	}
	short, err := place(ctx, snap)
	if err != nil {
		return err
	}
	fresh := make([]string, cfg.Commands*cfg.Rounds+10)
	for i := range fresh {
		if fresh[i], err = place(ctx, snap); err != nil {
			return err
		}
	}
	if err := waitForSnapshot(ctx, store, []string{exact, long[0], long[1]}, int64(cfg.Events)); err != nil {
		return err
	}

	get := func(base, id, query string) func(context.Context, int) error {
		return func(ctx context.Context, _ int) error { return getOrder(ctx, client, base+"/orders/"+id+query) }
	}
	next := 0
	figures := []struct {
		name string
		op   func(ctx context.Context, seq int) error
		max  int
	}{
		{"get/1", get(withSnaps.URL, short, ""), 0},
		{"get/exact", get(withSnaps.URL, exact, ""), 0},
		{"get/snap", get(withSnaps.URL, long[0], ""), 0},
		{"get/plain", get(without.URL, long[1], ""), 0},
		{"travel/snap", get(withSnaps.URL, long[0], fmt.Sprintf("?version=%d", cfg.Travel)), 0},
		{"travel/plain", get(without.URL, long[1], fmt.Sprintf("?version=%d", cfg.Travel)), 0},
		{"command/1", func(ctx context.Context, seq int) error {
			next++
			return readdress(ctx, client, withSnaps.URL, fresh[next-1], seq)
		}, cfg.Commands},
		{"command/snap", func(ctx context.Context, seq int) error { return readdress(ctx, client, withSnaps.URL, long[0], seq) }, cfg.Commands},
		{"command/plain", func(ctx context.Context, seq int) error { return readdress(ctx, client, without.URL, long[1], seq) }, cfg.Commands},
	}
	// The GETs first, while the long orders sit furthest from their snapshots; the commands after,
	// which move them on (a load then folds anything from 0 to Every-1 events).
	samples := map[string][]time.Duration{}
	for _, commands := range []bool{false, true} {
		for round := range cfg.Rounds {
			for _, f := range figures {
				if strings.HasPrefix(f.name, "command/") != commands {
					continue
				}
				lat, err := measure(ctx, cfg.Duration, f.max, f.op)
				if err != nil {
					return fmt.Errorf("%s: %w", f.name, err)
				}
				samples[f.name] = append(samples[f.name], lat...)
				fmt.Fprintf(stdout, "round %d %-13s %s\n", round+1, f.name, summary(lat))
			}
		}
	}
	var sizeAfter int64
	if err := pool.QueryRow(ctx, "SELECT max(version) FROM events WHERE stream_id = $1", long[0]).Scan(&sizeAfter); err != nil {
		return err
	}

	p := func(name string, q float64) time.Duration { return loadgen.Percentile(samples[name], q) }
	ratio := func(name, base string, q float64) string {
		return fmt.Sprintf("%.2f×", float64(p(name, q))/float64(max(p(base, q), 1)))
	}
	row := func(what, base, name string, target float64) string {
		verdict := ""
		if target > 0 {
			met := float64(p(name, .5)) <= target*float64(p(base, .5)) && float64(p(name, .99)) <= target*float64(p(base, .99))
			verdict = fmt.Sprintf("≤ %.1f×: %s", target, map[bool]string{true: "met", false: "not met"}[met])
		}
		return fmt.Sprintf("| %s | %s / %s | %s / %s | %s / %s | %s | %d |", what, ms(p(base, .5)), ms(p(base, .99)),
			ms(p(name, .5)), ms(p(name, .99)), ratio(name, base, .5), ratio(name, base, .99), verdict, len(samples[name]))
	}
	host, _ := os.Hostname()
	section := fmt.Sprintf(`## History: strongly consistent reads, time travel and snapshots

Measured %s on %s, one run, Postgres fsync=%s, synchronous_commit=%s.
Command: `+"`make bench`"+` (`+"`go run ./cmd/ordersbench history`"+`). The command API runs in the benchmark process,
twice on one event store: with snapshots (SNAPSHOT_EVERY=%d) and without (0). One client, one request at a
time; %d rounds of at most %s per figure (commands: at most %d a round), GETs first, then commands;
p50 / p99 over all rounds, beside the same request on a 1-event order (a fresh one for each command).

The long orders were built through the command service with snapshots (placed, then in turn an item
added, the address changed and the item removed): one of %d events, whose latest snapshot is at its
version, and two of %d, %d events past their latest snapshot: the most a load folds. Time travel to
version %d starts from the snapshot at %d. Each measured command adds an event (the long order with
snapshots ended at %d), so the commands' loads fold anything from 0 to %d events past a snapshot.

| request | 1-event order p50 / p99 | long order p50 / p99 | × 1-event p50 / p99 | target | samples |
|---|---|---|---|---|---|
%s
%s
%s
%s
%s
%s
%s
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, fsync, syncCommit, cfg.Every, cfg.Rounds, cfg.Duration, cfg.Commands,
		cfg.Events, size, cfg.Every-1, cfg.Travel, cfg.Travel/int64(cfg.Every)*int64(cfg.Every), sizeAfter, cfg.Every-1,
		row(fmt.Sprintf("GET /orders/{id}, %d events, with snapshots", cfg.Events), "get/1", "get/exact", 1.5),
		row(fmt.Sprintf("GET /orders/{id}, %d events, with snapshots", size), "get/1", "get/snap", 1.5),
		row(fmt.Sprintf("GET /orders/{id}, %d events, without snapshots", size), "get/1", "get/plain", 0),
		row(fmt.Sprintf("GET /orders/{id}?version=%d, with snapshots", cfg.Travel), "get/1", "travel/snap", 2),
		row(fmt.Sprintf("GET /orders/{id}?version=%d, without snapshots", cfg.Travel), "get/1", "travel/plain", 0),
		row("PUT /orders/{id}/shipping-address, with snapshots", "command/1", "command/snap", 1.5),
		row("PUT /orders/{id}/shipping-address, without snapshots", "command/1", "command/plain", 0))
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "history", section)
}

// measure runs op one call after another for d (and at most n calls when n > 0), after a few calls
// to warm up, and returns each call's latency.
func measure(ctx context.Context, d time.Duration, n int, op func(ctx context.Context, seq int) error) ([]time.Duration, error) {
	seq := 0
	for range 3 {
		if n > 0 {
			break // commands change the order: no warm-up beyond the first round's calls
		}
		if err := op(ctx, seq); err != nil {
			return nil, err
		}
		seq++
	}
	var lat []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end) && (n <= 0 || len(lat) < n); seq++ {
		t0 := time.Now()
		if err := op(ctx, seq); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func summary(lat []time.Duration) string {
	return fmt.Sprintf("%5d calls, p50 %s, p99 %s", len(lat), ms(loadgen.Percentile(lat, .5)), ms(loadgen.Percentile(lat, .99)))
}

// benchPrincipal is who builds the benchmark's orders through the service.
var benchPrincipal = auth.Principal{Subject: "bench", Role: auth.Staff}

var benchCustomer = order.Customer{ID: "cus_1042", Name: "Ada Lovelace", Email: "ada@example.com"}
var benchAddress = events.Address{Name: "Ada Lovelace", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"}

func place(ctx context.Context, svc *command.Service) (string, error) {
	out, err := svc.Place(ctx, benchPrincipal, events.Metadata{Actor: "bench"}, order.PlaceOrder{Customer: benchCustomer, ShippingAddress: benchAddress,
		Currency: "EUR", Items: []events.LineItem{{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}}}, nil)
	return out.Order.ID, err
}

// buildLongOrder places an order and runs commands on it until it has n events: in turn an item is
// added, the address changed and the item removed.
func buildLongOrder(ctx context.Context, svc *command.Service, n int) (string, error) {
	id, err := place(ctx, svc)
	if err != nil {
		return "", err
	}
	md := events.Metadata{Actor: "bench"}
	for v := 2; v <= n; v++ {
		sku := fmt.Sprintf("PN-%d", (v-2)/3)
		var decide order.Decision
		switch v % 3 {
		case 2:
			decide = func(st order.State) ([]events.Payload, error) {
				return st.AddItem(events.LineItem{SKU: sku, Name: "Pen", Quantity: 1, UnitPrice: 250})
			}
		case 0:
			decide = func(st order.State) ([]events.Payload, error) {
				a := benchAddress
				a.Line1 = fmt.Sprintf("%d Analytical St", v)
				return st.ChangeShippingAddress(a)
			}
		default:
			decide = func(st order.State) ([]events.Payload, error) { return st.RemoveItem(sku) }
		}
		if _, err := svc.Execute(ctx, benchPrincipal, id, 0, md, auth.ChangeOrder, decide, nil); err != nil {
			return "", fmt.Errorf("build order %s at version %d: %w", id, v, err)
		}
	}
	return id, nil
}

// waitForSnapshot waits until the snapshot taker has written each order's snapshot at version v.
func waitForSnapshot(ctx context.Context, store *eventstore.Store, ids []string, v int64) error {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		done := true
		for _, id := range ids {
			s, err := store.LatestSnapshot(ctx, id, 0)
			if err != nil {
				return err
			}
			done = done && s != nil && s.Version >= v
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no snapshot at version %d after a minute", v)
		}
	}
}

func getOrder(ctx context.Context, client *http.Client, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", tokenFor(0))
	status, err := send(client, req)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s = %d", url, status)
	}
	return err
}

func readdress(ctx context.Context, client *http.Client, base, id string, seq int) error {
	body := fmt.Sprintf(`{"name": "Ada Lovelace", "line1": "%d Analytical St", "line2": "", "city": "London", "postal_code": "NW1 6XE", "country": "GB"}`, seq)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/orders/"+id+"/shipping-address", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", tokenFor(0))
	status, err := send(client, req)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("PUT shipping-address of %s = %d", id, status)
	}
	return err
}

// send sends req, reads its answer to the end and returns its status code.
func send(client *http.Client, req *http.Request) (int, error) {
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

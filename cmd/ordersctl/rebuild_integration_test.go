//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/events"
)

// The command line end to end, on the test's own database, topic and indices: migrate, republish,
// status, a refused rebuild, rebuilds with backfill (flags before and after the read model), verify,
// with progress on stderr and results on stdout. The rebuild's logic is tested in internal/rebuild.
func TestCommandLineMigrateRepublishRebuildVerifyStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testenv.PostgresURL(t)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	prefix := testenv.IndexPrefix(t)
	osc := testenv.OpenSearch(t)
	t.Cleanup(func() { // the rebuild creates orders-v2 and its parking; testenv only knows the prefix
		if res, err := (opensearchapi.IndicesDeleteRequest{Index: []string{prefix + "*"}}).Do(context.Background(), osc); err == nil {
			res.Body.Close()
		}
	})
	name := testenv.Name(t)
	master, masterFile := testenv.MasterKey(t)
	env := map[string]string{"DATABASE_URL": dbURL, "PII_MASTER_KEY_FILE": masterFile, "KAFKA_BROKERS": strings.Join(testenv.KafkaBrokers(t), ","),
		"OPENSEARCH_URL": testenv.OpenSearchURL(t), "EVENTS_TOPIC": testenv.Topic(t, 3), "SEARCH_INDEX_ALIAS": prefix + "-orders",
		"PROJECTOR_ORDERS_GROUP": name + "-orders", "PROJECTOR_SEARCH_GROUP": name + "-search"}
	ctl := func(args ...string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		err = run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	// migrate, twice: it is idempotent.
	for range 2 {
		if out, errOut, err := ctl("migrate"); err != nil || !strings.Contains(out, "live generation orders_g1") {
			t.Fatalf("migrate = %v\n%s%s", err, out, errOut)
		}
	}
	if err := searchindex.New(osc, env["SEARCH_INDEX_ALIAS"]).Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	svc := &command.Service{Store: eventstore.New(pool), Keys: testenv.Keyring(t, pool, master), MaxRetries: 5}
	for i := range 30 {
		o, err := svc.Place(ctx, testActor, events.Metadata{Actor: "test"}, order.PlaceOrder{
			Customer:        order.Customer{ID: "cus", Name: fmt.Sprintf("Customer %d", i), Email: "c@example.com"},
			ShippingAddress: events.Address{Name: "A", Line1: "1 St", City: "London", PostalCode: "N1", Country: "GB"},
			Currency:        "EUR", Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 1999}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Execute(ctx, testActor, o.Order.ID, 0, events.Metadata{}, auth.ChangeOrder, func(st order.State) ([]events.Payload, error) {
			return st.ConfirmPayment(1999, "EUR", "p")
		}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// No relay here: the topic is filled by republishing from the store.
	if out, _, err := ctl("events", "republish"); err != nil || !strings.Contains(out, "republished events up to position 60") {
		t.Fatalf("republish = %v, %q", err, out)
	}

	out, _, err := ctl("projector", "status", "--output", "json")
	var st rebuild.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --output json = %v, %q", err, out)
	}
	if !st.History.Complete() || len(st.History.Partitions) != 3 || len(st.Groups) != 2 || st.Groups[0].Exists ||
		st.Orders == nil || st.Orders.Live != "orders_g1" || st.Search == nil || strings.Join(st.Search.Targets, ",") != prefix+"-orders-v1" {
		t.Errorf("status = %s", out)
	}

	// The topic loses its early records: a rebuild refuses (exit 1), naming the way out.
	adm := testenv.Admin(t)
	ends, err := adm.ListEndOffsets(ctx, env["EVENTS_TOPIC"])
	if err != nil {
		t.Fatal(err)
	}
	var del kadm.Offsets
	ends.Each(func(o kadm.ListedOffset) { del.AddOffset(o.Topic, o.Partition, o.Offset/2, -1) })
	if _, err := adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ctl("projector", "rebuild", "orders"); err == nil || errors.Is(err, errUsage) ||
		!strings.Contains(err.Error(), "refusing to rebuild") || !strings.Contains(err.Error(), "--backfill") {
		t.Fatalf("rebuild of a topic that lost records = %v, want a refusal naming --backfill", err)
	}
	if out, _, _ := ctl("projector", "status"); !strings.Contains(out, "HISTORY WAS DELETED") {
		t.Errorf("status after the loss:\n%s", out)
	}

	for _, tt := range []struct {
		target string
		args   []string
	}{
		{"orders", []string{"projector", "rebuild", "--backfill", "orders"}},
		{"search", []string{"projector", "rebuild", "search", "--backfill"}},
	} {
		args := tt.args
		out, errOut, err := ctl(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out, errOut)
		}
		if !strings.Contains(errOut, "backfill from the event store") || !strings.Contains(errOut, "caught up: reads switched to") ||
			!strings.Contains(errOut, "progress: ") {
			t.Errorf("%v: stderr lacks the backfill, the progress or the switch:\n%s", args, errOut)
		}
		if !strings.HasPrefix(out, "rebuilt "+tt.target+" in ") || !strings.Contains(out, "reads are on ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: stdout = %q, want the one result line (progress goes to stderr)", args, out)
		}
	}

	out, _, err = ctl("verify", "orders", "--output", "json")
	var rep rebuild.Report
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Orders != 30 || rep.Events != 60 || !rep.OK() {
		t.Errorf("verify orders --output json = %v, %s", err, out)
	}
	if out, _, err := ctl("verify", "search"); err != nil || !strings.Contains(out, "verified 30 orders against the search read model: 0 differences") {
		t.Errorf("verify search = %v, %q", err, out)
	}
	out, _, _ = ctl("projector", "status", "-o", "json")
	st = rebuild.Status{}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Orders.Live != "orders_g2" ||
		strings.Join(st.Search.Targets, ",") != prefix+"-orders-v2" || len(st.History.Lost()) == 0 {
		t.Errorf("status after the rebuilds = %v, %s", err, out)
	}
}

// testActor is the principal the test's commands run as.
var testActor = auth.Principal{Subject: "test", Role: auth.Staff}

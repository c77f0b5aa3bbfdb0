//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

func TestVerifySearchFindsEveryDifference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, pool := migratedDB(t)
	osURL := testenv.OpenSearchURL(t)
	osc := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(osc, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	store := eventstore.New(pool)
	var ids []string
	for range 5 {
		id := uuid.NewString()
		ids = append(ids, id)
		payloads := []events.Payload{events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 10}}}, events.PaymentConfirmed{Amount: 10, Currency: "EUR", Reference: "p"}}
		var batch []projection.Event
		for v, p := range payloads {
			typ, sv, data, _ := events.EncodeAt(p, 1) // personal data in plain text, as an older release wrote it
			got, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: int64(v),
				Events: []eventstore.NewEvent{{Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Now()}}})
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, projection.Event{Envelope: got[0], Payload: p})
		}
		if _, err := (searchindex.Handler{Index: ix}).Apply(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, masterFile := testenv.MasterKey(t)
	env := map[string]string{"DATABASE_URL": dbURL, "PII_MASTER_KEY_FILE": masterFile, "OPENSEARCH_URL": osURL, "SEARCH_INDEX_ALIAS": prefix + "-orders"}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(ctx, []string{"verify", "search"}, getenv, &out, &out); err != nil {
		t.Fatalf("verify of a correct index = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "verified 5 orders against the search read model: 0 differences") {
		t.Errorf("output = %q", out.String())
	}

	// Corrupt the index: delete one document, change a field of another, add one the store never had.
	res, err := opensearchapi.DeleteRequest{Index: prefix + "-orders-v1", DocumentID: ids[0]}.Do(ctx, osc)
	if err != nil || res.IsError() {
		t.Fatalf("delete: %v %v", err, res)
	}
	docs, err := ix.Get(ctx, []string{ids[1]})
	if err != nil {
		t.Fatal(err)
	}
	changed := docs[ids[1]]
	mallory := "Mallory"
	changed.Customer.Name = &mallory
	changed.Version = 2 // same version, other content: written around the version guard
	res, err = opensearchapi.IndexRequest{Index: prefix + "-orders-v1", DocumentID: ids[1], Body: strings.NewReader(mustJSON(t, changed))}.Do(ctx, osc)
	if err != nil || res.IsError() {
		t.Fatalf("overwrite: %v %v", err, res)
	}
	extra, err := order.State{ID: "not-in-store", Version: 1, Status: order.StatusPlaced}.View(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Write(ctx, []api.Order{extra}, true); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(ctx, []string{"verify", "search"}, getenv, &out, &out)
	if !errors.Is(err, errDifferences) {
		t.Fatalf("verify of a corrupted index = %v, want errDifferences\n%s", err, out.String())
	}
	for _, want := range []string{"missing  " + ids[0], "fields   " + ids[1], "extra    not-in-store", ": 3 differences"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

//go:build integration

package searchindex_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

func setup(t *testing.T) (*searchindex.Index, *opensearch.Client, string) {
	t.Helper()
	client := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(client, prefix+"-orders")
	for range 2 { // idempotent
		if err := ix.Ensure(context.Background(), prefix+"-orders-v1"); err != nil {
			t.Fatal(err)
		}
	}
	return ix, client, prefix
}

func doc(id string, version int64, status string) api.Order {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return api.Order{ID: id, Version: version, Status: status, Currency: "EUR", Total: 3998,
		Items:           []events.LineItem{{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}},
		Customer:        api.Customer{ID: "cus_1042", Name: ptr("Ada Lovelace"), Email: ptr("ada@example.com")},
		ShippingAddress: &events.Address{Name: "Ada", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"},
		PlacedAt:        at, UpdatedAt: at}
}

func TestWriteIsVersionGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix, _, _ := setup(t)
	v3 := doc("o-1", 3, "paid")
	v3.Payment = &api.Payment{Amount: 3998, Reference: "p"}
	r, err := ix.Write(ctx, []api.Order{v3, doc("o-2", 1, "placed")}, false)
	if err != nil || r.Written != 2 || len(r.Stale) != 0 || len(r.Failures) != 0 {
		t.Fatalf("first write = %+v, %v; want 2 written", r, err)
	}
	// A duplicate (same version) and a stale one (older) are refused by OpenSearch: 409, counted stale.
	r, err = ix.Write(ctx, []api.Order{v3, doc("o-1", 2, "placed"), doc("o-2", 2, "cancelled")}, false)
	if err != nil || r.Written != 1 || len(r.Stale) != 1 || !r.Stale["o-1"] {
		t.Fatalf("second write = %+v, %v; want o-2 written, o-1 stale (twice)", r, err)
	}
	got, err := ix.Get(ctx, []string{"o-1", "o-2", "o-missing"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["o-1"].Status != "paid" || got["o-1"].Version != 3 || got["o-2"].Status != "cancelled" {
		t.Fatalf("Get = %+v; want o-1 paid v3, o-2 cancelled", got)
	}
	if !reflect.DeepEqual(got["o-1"], v3) {
		t.Errorf("document round trip = %+v, want %+v", got["o-1"], v3)
	}
}

func TestStrictMappingRejectsUnknownFieldsPerItem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix, client, prefix := setup(t)
	// Write through the raw API a document with an unmapped field: the mapping is strict.
	body := `{"index":{"_index":"` + prefix + `-orders","_id":"x","version":1,"version_type":"external"}}` + "\n" + `{"id":"x","colour":"red"}` + "\n"
	res, err := opensearchapi.BulkRequest{Body: strings.NewReader(body)}.Do(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	n, _ := res.Body.Read(buf)
	sb.Write(buf[:n])
	if !strings.Contains(sb.String(), "strict_dynamic_mapping_exception") {
		t.Errorf("bulk with an unmapped field answered %s; want strict_dynamic_mapping_exception", sb.String())
	}
	if r, err := ix.Write(ctx, []api.Order{doc("o-ok", 1, "placed")}, true); err != nil || r.Written != 1 {
		t.Fatalf("Write = %+v, %v", r, err)
	}
}

func TestDocumentsAreSearchable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ix, client, prefix := setup(t)
	other := doc("o-2", 1, "placed")
	other.Customer.Name = ptr("Charles Babbage")
	other.Items[0].Name = "Difference Engine"
	if _, err := ix.Write(ctx, []api.Order{doc("o-1", 1, "placed"), other}, true); err != nil {
		t.Fatal(err)
	}
	res, err := opensearchapi.SearchRequest{Index: []string{prefix + "-orders"},
		Body: strings.NewReader(`{"query":{"multi_match":{"query":"engine babbage","type":"cross_fields","fields":["customer.name","items.name"],"operator":"and"}}}`)}.Do(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := make([]byte, 1<<16)
	n, _ := res.Body.Read(buf)
	if res.IsError() || !strings.Contains(string(buf[:n]), `"_id":"o-2"`) || strings.Contains(string(buf[:n]), `"_id":"o-1"`) {
		t.Fatalf("search answered %s; want only o-2", buf[:n])
	}
}

// An orders index gets a replica wherever the cluster has a second node, and none on a single node (it
// stays green): losing a node of a production cluster does not lose the index.
func TestIndexReplicasFollowTheCluster(t *testing.T) {
	t.Parallel()
	_, client, prefix := setup(t)
	res, err := opensearchapi.IndicesGetSettingsRequest{Index: []string{prefix + "-orders-v1"}}.Do(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got map[string]struct {
		Settings struct {
			Index struct {
				Shards     string `json:"number_of_shards"`
				AutoExpand string `json:"auto_expand_replicas"`
			} `json:"index"`
		} `json:"settings"`
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	s := got[prefix+"-orders-v1"].Settings.Index
	if s.Shards != "1" || s.AutoExpand != "0-1" {
		t.Errorf("index settings: %s shards, auto_expand_replicas %q; want 1 and 0-1", s.Shards, s.AutoExpand)
	}
	health, err := opensearchapi.ClusterHealthRequest{Index: []string{prefix + "-orders-v1"}, WaitForStatus: "green",
		Timeout: 10 * time.Second}.Do(context.Background(), client)
	if err != nil {
		t.Fatal(err)
	}
	defer health.Body.Close()
	if health.IsError() {
		t.Errorf("the index is not green on a single node: %s", health)
	}
}

func ptr[T any](v T) *T { return &v }

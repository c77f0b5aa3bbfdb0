//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	"github.com/orders-oss/orders/services/query/httpapi"
)

type result struct {
	Total      int64                       `json:"total"`
	Hits       []api.Order                 `json:"hits"`
	NextCursor *string                     `json:"next_cursor"`
	Facets     map[string]map[string]int64 `json:"facets"`
	Code       string                      `json:"code"`
}

// get searches as staff, or as p when given.
func get(t *testing.T, srv *httptest.Server, path string, p ...auth.Principal) (int, result) {
	t.Helper()
	who := authtest.Staff
	if len(p) > 0 {
		who = p[0]
	}
	res, raw := do(t, srv, path, "Authorization", bearer(t, srv, who))
	var r result
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, raw)
	}
	return res.StatusCode, r
}

func searchServer(t *testing.T, alias string) *httptest.Server {
	t.Helper()
	client := testenv.OpenSearch(t)
	return serve(t, httpapi.Config{Search: searchindex.New(client, alias),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(context.Context) error { return nil }})
}

func TestSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(client, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	statuses := []string{"placed", "paid", "shipped", "delivered", "cancelled"}
	var docs []api.Order
	for i := range 25 {
		// Ids end in the number: "o-NN" below.
		o := api.Order{ID: fmt.Sprintf("01936f3e-0000-7000-8000-0000000000%02d", i), Version: 1, Status: statuses[i%5], Currency: "EUR", Total: int64(1000 + i),
			Items:           []events.LineItem{{SKU: fmt.Sprintf("SKU-%d", i%3), Name: "Notes on the Engine", Quantity: 1, UnitPrice: int64(1000 + i)}},
			Customer:        api.Customer{ID: "cus_1", Name: ptr("Ada Lovelace"), Email: ptr("ada@example.com")},
			ShippingAddress: &events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"},
			PlacedAt:        base.Add(time.Duration(i) * time.Hour), UpdatedAt: base}
		if i == 7 {
			o.Customer.Name, o.Customer.Email = ptr("Charles Babbage"), ptr("charles@example.com")
			o.Shipment = &api.Shipment{Carrier: "DHL", TrackingNumber: "JD0001"}
		}
		if i == 8 {
			o.Currency = "GBP"
		}
		docs = append(docs, o)
	}
	if r, err := ix.Write(ctx, docs, true); err != nil || r.Written != 25 {
		t.Fatalf("index = %+v, %v", r, err)
	}
	srv := searchServer(t, prefix+"-orders")

	tests := []struct {
		path    string
		wantIDs []string
		total   int64
	}{
		{"/orders/search?q=babbage", []string{"o-07"}, 1},
		{"/orders/search?q=charles%40example.com", []string{"o-07"}, 1},
		{"/orders/search?q=JD0001", []string{"o-07"}, 1},
		{"/orders/search?q=ada&status=shipped&sort=total&limit=3", []string{"o-02", "o-12", "o-17"}, 4},
		{"/orders/search?currency=GBP", []string{"o-08"}, 1},
		{"/orders/search?total_min=1023&sort=-total", []string{"o-24", "o-23"}, 2},
		{"/orders/search?placed_from=2026-11-01T20:00:00Z&placed_to=2026-11-01T22:00:00Z&sort=placed_at", []string{"o-20", "o-21"}, 2},
		{"/orders/search?q=SKU-2&status=placed,paid&sort=placed_at", []string{"o-05", "o-11", "o-20"}, 3},
	}
	for _, tt := range tests {
		code, r := get(t, srv, tt.path)
		var ids []string
		for _, h := range r.Hits {
			ids = append(ids, "o-"+h.ID[len(h.ID)-2:])
		}
		if code != 200 || strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") || r.Total != tt.total {
			t.Errorf("GET %s = %d, total %d, %v; want total %d, %v", tt.path, code, r.Total, ids, tt.total, tt.wantIDs)
		}
	}

	// Facets count every status among the matches.
	_, r := get(t, srv, "/orders/search?q=ada")
	if r.Facets["status"]["placed"] != 5 || r.Facets["status"]["paid"] != 5 || r.Facets["status"]["shipped"] != 4 {
		t.Errorf("facets = %v; want placed 5, paid 5, shipped 4", r.Facets)
	}

	// Cursor pagination visits every order once.
	seen := map[string]bool{}
	path := "/orders/search?limit=7&sort=placed_at"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		code, r := get(t, srv, path)
		if code != 200 {
			t.Fatalf("GET %s = %d", path, code)
		}
		for _, h := range r.Hits {
			if seen[h.ID] {
				t.Fatalf("%s seen twice while paginating", h.ID)
			}
			seen[h.ID] = true
		}
		if r.NextCursor == nil {
			break
		}
		path = "/orders/search?limit=7&sort=placed_at&cursor=" + url.QueryEscape(*r.NextCursor)
	}
	if len(seen) != 25 {
		t.Errorf("pagination visited %d orders, want 25", len(seen))
	}
}

func TestSearchRefusesBadInputAndHidesIndexErrors(t *testing.T) {
	t.Parallel()
	srv := searchServer(t, testenv.IndexPrefix(t)+"-missing")
	for _, path := range []string{
		"/orders/search?limit=0", "/orders/search?limit=101", "/orders/search?status=lost",
		"/orders/search?placed_from=yesterday", "/orders/search?total_min=-1", "/orders/search?sort=colour",
		"/orders/search?currency=euro", "/orders/search?q=" + strings.Repeat("a", 201), "/orders/search?cursor=bm9wZQ",
	} {
		if code, r := get(t, srv, path); code != 400 || r.Code == "" {
			t.Errorf("GET %s = %d %q, want 400 with a code", path, code, r.Code)
		}
	}
	// The alias does not exist: OpenSearch answers 404, the API 503, not a 500 with its internals.
	if code, r := get(t, srv, "/orders/search?q=ada"); code != 503 || r.Code != "search_unavailable" {
		t.Errorf("search on a missing index = %d %q, want 503 search_unavailable", code, r.Code)
	}
}

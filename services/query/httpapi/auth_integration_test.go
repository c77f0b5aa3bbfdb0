//go:build integration

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/services/query/httpapi"
)

// issuers remembers each test server's token issuer (by URL).
var issuers sync.Map

// serve runs the query API with cfg behind a token issuer of the test's own.
func serve(t *testing.T, cfg httpapi.Config) *httptest.Server {
	t.Helper()
	issuer := authtest.New(t)
	cfg.Auth = issuer.Auth
	srv := httptest.NewServer(httpapi.New(cfg))
	t.Cleanup(srv.Close)
	issuers.Store(srv.URL, issuer)
	return srv
}

// bearer is an Authorization header for p that srv accepts.
func bearer(t *testing.T, srv *httptest.Server, p auth.Principal) string {
	t.Helper()
	i, ok := issuers.Load(srv.URL)
	if !ok {
		t.Fatalf("no issuer for %s: start the server with serve", srv.URL)
	}
	return i.(*authtest.Issuer).Bearer(t, p)
}

// The role rules of item 3 of issue 13 on the query API: a customer reads and lists its own orders
// only; another customer's order is not found, exactly like one that does not exist.
func TestRolesOnTheQueryAPI(t *testing.T) {
	t.Parallel()
	m := newReadModel(t)
	mine1, mine2, theirs := testOrder(1, 1, "placed"), testOrder(2, 2, "paid"), testOrder(3, 1, "placed")
	mine1.Customer.ID, mine2.Customer.ID, theirs.Customer.ID = "cus_1042", "cus_1042", "cus_2001"
	m.upsert(mine1, mine2, theirs)
	srv := ordersServer(t, m.pool, 200*time.Millisecond)
	ada := bearer(t, srv, authtest.Ada)
	ids := func(raw []byte) string {
		var page struct{ Items []api.Order }
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatalf("%v: %s", err, raw)
		}
		var out []string
		for _, o := range page.Items {
			out = append(out, o.ID)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	for _, tt := range []struct {
		path, auth string
		status     int
		wantIDs    string
	}{
		{"/orders/" + mine1.ID, ada, 200, ""},
		{"/orders/" + theirs.ID, ada, 404, ""},
		{"/orders/" + theirs.ID + "?min_version=1", ada, 404, ""},
		{"/orders/" + theirs.ID, bearer(t, srv, authtest.Staff), 200, ""},
		{"/orders", ada, 200, mine1.ID + "," + mine2.ID},
		{"/orders?customer_id=cus_1042", ada, 200, mine1.ID + "," + mine2.ID},
		{"/orders?customer_id=cus_2001", ada, 200, ""},
		{"/orders?status=placed", ada, 200, mine1.ID},
		{"/orders", bearer(t, srv, authtest.Bob), 200, theirs.ID},
		{"/orders", bearer(t, srv, authtest.Staff), 200, mine1.ID + "," + mine2.ID + "," + theirs.ID},
		{"/orders", "", 401, ""},
		{"/orders/" + mine1.ID, "", 401, ""},
	} {
		res, raw := do(t, srv, tt.path, "Authorization", tt.auth)
		if res.StatusCode != tt.status {
			t.Errorf("GET %s = %d %s, want %d", tt.path, res.StatusCode, raw, tt.status)
			continue
		}
		if tt.status == 404 {
			wantProblem(t, res, raw, 404, "order_not_found")
		}
		if tt.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", tt.path)
		}
		if strings.HasPrefix(tt.path, "/orders?") || tt.path == "/orders" {
			if got := ids(raw); tt.status == 200 && got != tt.wantIDs {
				t.Errorf("GET %s = %s, want %s", tt.path, got, tt.wantIDs)
			}
		}
	}
}

// Search is confined to the customer's own orders: hits, totals and facets.
func TestSearchIsScopedToTheCustomer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	ix := searchindex.New(client, prefix+"-orders")
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	var docs []api.Order
	for i := range 6 {
		o := testOrder(i+1, 1, "placed")
		o.Customer.ID = map[bool]string{true: "cus_1042", false: "cus_2001"}[i%3 == 0]
		docs = append(docs, o)
	}
	if r, err := ix.Write(ctx, docs, true); err != nil || r.Written != 6 {
		t.Fatalf("index = %+v, %v", r, err)
	}
	srv := searchServer(t, prefix+"-orders")
	for _, tt := range []struct {
		who   auth.Principal
		total int64
	}{{authtest.Ada, 2}, {authtest.Bob, 4}, {authtest.Staff, 6}} {
		code, r := get(t, srv, "/orders/search?q=ada", tt.who)
		if code != 200 || r.Total != tt.total || int64(len(r.Hits)) != tt.total || r.Facets["status"]["placed"] != tt.total {
			t.Errorf("%s searches = %d, total %d, %d hits, facets %v; want %d of each", tt.who.Subject, code, r.Total, len(r.Hits), r.Facets, tt.total)
		}
		for _, h := range r.Hits {
			if !tt.who.Sees(h.Customer.ID) {
				t.Errorf("%s found %s of %s", tt.who.Subject, h.ID, h.Customer.ID)
			}
		}
	}
	if code, r := get(t, srv, "/orders/search?q="+docs[1].ID, authtest.Ada); code != 200 || r.Total != 0 {
		t.Errorf("ada searches another customer's order id = %d, total %d; want nothing", code, r.Total)
	}
}

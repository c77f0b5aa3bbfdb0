//go:build integration

package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/auth/authtest"
	"github.com/orders-oss/orders/pkg/api"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const placeBody = `{"customer": {"id": "cus_%d", "name": "%s", "email": "c%d@example.com"},
 "shipping_address": {"name": "A", "line1": "1 St", "line2": "", "city": "London", "postal_code": "N1", "country": "GB"},
 "currency": "EUR", "items": [{"sku": "BK-001", "name": "Notes on the Engine", "quantity": 2, "unit_price": 1999}]}`

func call(t *testing.T, bearer, method, url, body string) api.Order {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", bearer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s = %d %s", method, url, res.StatusCode, raw)
	}
	var o api.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestCommandToSearch drives orders through the command API and reads them back from the search API,
// through the event store, the relay, Kafka and the search projector.
func TestCommandToSearch(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, false)
	bearer := p.issuer.Bearer(t, authtest.Staff)
	command, query := p.command, p.query

	names := []string{"Ada Lovelace", "Charles Babbage", "Grace Hopper", "Alan Turing"}
	want := map[string]api.Order{}
	for i, name := range names {
		o := call(t, bearer, "POST", command.URL+"/orders", fmt.Sprintf(placeBody, i, name, i))
		switch i {
		case 0: // the whole life of an order
			call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/items", `{"sku": "PN-7", "name": "Pen", "quantity": 1, "unit_price": 250}`)
			call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/payment", `{"amount": 4248, "currency": "EUR", "reference": "p"}`)
			call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/shipment", `{"carrier": "DHL", "tracking_number": "JD0001"}`)
			o = call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/delivery", `{}`)
		case 1:
			call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "p"}`)
			o = call(t, bearer, "POST", command.URL+"/orders/"+o.ID+"/cancellation", `{"reason": "changed my mind"}`)
		case 2:
			o = call(t, bearer, "PUT", command.URL+"/orders/"+o.ID+"/shipping-address", `{"name": "G", "line1": "2 Rd", "line2": "", "city": "Paris", "postal_code": "75001", "country": "FR"}`)
		}
		want[o.ID] = o
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := get(bearer, query.URL+"/orders/search?limit=10")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Total int64       `json:"total"`
			Hits  []api.Order `json:"hits"`
		}
		_ = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		ok := got.Total == int64(len(want))
		for _, h := range got.Hits {
			w := want[h.ID]
			if h.Version != w.Version || h.Status != w.Status || h.Total != w.Total || len(h.Items) != len(w.Items) {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search after 60 s: %+v; want %d orders at their final state and version", got, len(want))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The read API serves each order from the orders table at its final state and version, with the
	// same JSON as the command API (min_version: read-your-writes).
	for id, w := range want {
		res, err := get(bearer, fmt.Sprintf("%s/orders/%s?min_version=%d", query.URL, id, w.Version))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var got api.Order
		if res.StatusCode != http.StatusOK || json.Unmarshal(raw, &got) != nil {
			t.Fatalf("GET /orders/%s = %d %s", id, res.StatusCode, raw)
		}
		if res.Header.Get("X-Read-Model-Stale") != "" || res.Header.Get("ETag") != fmt.Sprintf("%q", fmt.Sprint(w.Version)) {
			t.Errorf("GET /orders/%s: stale %q, ETag %q; want fresh at version %d", id, res.Header.Get("X-Read-Model-Stale"), res.Header.Get("ETag"), w.Version)
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(w)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("GET /orders/%s =\n%s\nwant the command API's answer\n%s", id, gotJSON, wantJSON)
		}
	}
	// Full text reaches the tracking number and the customer.
	for q, wantName := range map[string]string{"JD0001": "Ada Lovelace", "hopper": "Grace Hopper"} {
		res, err := get(bearer, query.URL+"/orders/search?q="+q)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Hits []api.Order `json:"hits"`
		}
		_ = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		if len(got.Hits) != 1 || got.Hits[0].Customer.Name == nil || *got.Hits[0].Customer.Name != wantName {
			t.Errorf("search %q = %+v, want only %s's order", q, got.Hits, wantName)
		}
	}
}

// get sends an authenticated GET.
func get(bearer, url string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", bearer)
	return http.DefaultClient.Do(req)
}

package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// fakeIdentity accepts the tokens fakeLogin signs: "tok:<subject>:<role>".
type fakeIdentity struct{}

func (fakeIdentity) Verify(_ context.Context, token string) (auth.Principal, error) {
	parts := strings.Split(token, ":")
	if len(parts) != 3 || parts[0] != "tok" {
		return auth.Principal{}, errors.New("invalid token")
	}
	return auth.Principal{Subject: parts[1], Role: auth.Role(parts[2])}, nil
}

type fakeLogin struct{}

func (fakeLogin) Dev() bool { return true }
func (fakeLogin) DevToken(p auth.Principal, _ time.Duration) (string, error) {
	return "tok:" + p.Subject + ":" + string(p.Role), nil
}
func (fakeLogin) AuthURL(string, string) string { return "" }
func (fakeLogin) Exchange(context.Context, string, string) (string, error) {
	return "", errors.New("no OIDC")
}

type fakeSearch struct {
	res searchindex.SearchResult
	err error
	got searchindex.SearchRequest
}

func (f *fakeSearch) Search(_ context.Context, req searchindex.SearchRequest) (searchindex.SearchResult, error) {
	f.got = req
	return f.res, f.err
}

// fakeHistory answers like command.Service over an event store holding these histories.
type fakeHistory map[string][]events.Envelope

func (f fakeHistory) Order(_ context.Context, _ auth.Principal, id string, at command.At) (api.Order, error) {
	h := f[id]
	if len(h) == 0 {
		return api.Order{}, order.ErrNotFound()
	}
	v := int64(len(h))
	switch {
	case at.Version > 0:
		v = at.Version
	case !at.Time.IsZero():
		v = 0
		for _, e := range h {
			if !e.RecordedAt.After(at.Time) {
				v = e.Version
			}
		}
	}
	if v < 1 || v > int64(len(h)) {
		return api.Order{}, fmt.Errorf("order %s has versions 1 to %d: %w", id, len(h), command.ErrNotInHistory)
	}
	st, err := order.Fold(h[:v])
	if err != nil {
		return api.Order{}, err
	}
	return st.View(nil)
}

func (f fakeHistory) Timeline(_ context.Context, _ auth.Principal, id string) ([]command.Step, error) {
	h := f[id]
	if len(h) == 0 {
		return nil, order.ErrNotFound()
	}
	// As command.Service.Timeline: an event this code cannot read is reported and leaves the order as it
	// was.
	steps := make([]command.Step, len(h))
	var st order.State
	for i, e := range h {
		steps[i].Event = e
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			steps[i].Err = err
		} else {
			st = order.Evolve(st, e, p)
		}
		if steps[i].After, err = st.View(nil); err != nil {
			return nil, err
		}
	}
	return steps, nil
}

func envelope(t *testing.T, id string, v int64, at time.Time, p events.Payload) events.Envelope {
	t.Helper()
	typ, sv, data, err := events.EncodeAt(p, 1) // plain text (v1): the fakes hold no keys
	if err != nil {
		t.Fatal(err)
	}
	return events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: v, Type: typ, SchemaVersion: sv, Data: data,
		Metadata: events.Metadata{CorrelationID: "corr-" + string(rune('a'+v%2)), Actor: "ada"}, OccurredAt: at, RecordedAt: at}
}

type console struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	search *fakeSearch
}

func newConsole(t *testing.T, history fakeHistory) *console {
	t.Helper()
	search := &fakeSearch{}
	h, _, err := New(Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Identity: fakeIdentity{}, Login: fakeLogin{},
		SessionKey: make([]byte, 32), Search: search, Orders: history})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &console{t: t, srv: srv, search: search, client: &http.Client{Jar: jar}}
}

func (c *console) get(path string) (int, string) {
	c.t.Helper()
	res, err := c.client.Get(c.srv.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (c *console) post(path string, form url.Values) (int, string) {
	c.t.Helper()
	res, err := c.client.PostForm(c.srv.URL+path, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (c *console) login(subject string, role auth.Role) {
	c.t.Helper()
	if status, body := c.post("/login", url.Values{"subject": {subject}, "role": {string(role)}, "return": {"/search"}}); status != 200 && role != auth.Customer {
		c.t.Fatalf("login as %s: %d\n%s", role, status, body)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestSignInAndRoles(t *testing.T) {
	c := newConsole(t, fakeHistory{})
	// Signed out: every page sends to the login page.
	if status, body := c.get("/projectors"); status != 200 || !strings.Contains(body, "Sign in") {
		t.Fatalf("signed out /projectors = %d, want the login page", status)
	}
	// A customer signs in but is refused.
	if status, body := c.post("/login", url.Values{"subject": {"cus_1"}, "role": {"customer"}, "customer_id": {"cus_1"}}); status != 403 || !strings.Contains(body, "customers use the orders API") {
		t.Fatalf("customer sign-in = %d, want 403 with a clear message", status)
	}
	// Staff sees search but not the operator pages.
	c.login("sam", auth.Staff)
	if status, body := c.get("/search"); status != 200 || !strings.Contains(body, "sam") || strings.Contains(body, "Rebuild &amp; verify") {
		t.Errorf("staff /search = %d; want the page, signed in as sam, without the admin link", status)
	}
	if status, body := c.get("/rebuild"); status != 403 || !strings.Contains(body, "needs the role admin") {
		t.Errorf("staff /rebuild = %d, want 403 naming the role", status)
	}
	// A form without the session's CSRF token is refused.
	if status, _ := c.post("/logout", url.Values{"csrf": {"forged"}}); status != 403 {
		t.Errorf("logout with a forged CSRF token = %d, want 403", status)
	}
	_, page := c.get("/search")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token in the page's sign-out form")
	}
	if status, body := c.post("/logout", url.Values{"csrf": {m[1]}}); status != 200 || !strings.Contains(body, "Sign in") {
		t.Errorf("logout = %d, want the login page", status)
	}
	// Admin sees the operator pages.
	c.login("ada", auth.Admin)
	if status, body := c.get("/rebuild"); status != 200 || !strings.Contains(body, "Start the rebuild") {
		t.Errorf("admin /rebuild = %d, want the page", status)
	}
	// A return address elsewhere is not followed.
	if got := localPath("//evil.example/x"); got != "/search" {
		t.Errorf("localPath(//evil.example/x) = %q, want /search", got)
	}
}

func TestSearchPage(t *testing.T) {
	c := newConsole(t, fakeHistory{})
	c.login("sam", auth.Staff)
	id := uuid.NewString()
	c.search.res = searchindex.SearchResult{Total: 1, Hits: []api.Order{{ID: id, Status: "paid", Currency: "EUR", Total: 3998,
		Customer: api.Customer{Name: ptr("Ada Lovelace"), Email: ptr("ada@example.com")}}},
		Facets: map[string]map[string]int64{"status": {"paid": 1}}}
	status, body := c.get("/search?q=lovelace&status=paid&sort=-total")
	if status != 200 || !strings.Contains(body, "/orders/"+id) || !strings.Contains(body, "39.98 EUR") || !strings.Contains(body, "1 orders found") {
		t.Fatalf("search = %d, want the hit linked with its total\n%s", status, body)
	}
	if c.search.got.Q != "lovelace" || len(c.search.got.Statuses) != 1 || c.search.got.Sort != "-total" {
		t.Errorf("search request = %+v", c.search.got)
	}
	if status, body := c.get("/search?status=lost"); status != 400 || !strings.Contains(body, "unknown status lost") {
		t.Errorf("bad status = %d, want 400 naming it", status)
	}
	c.search.err = errors.New("connection refused")
	if status, body := c.get("/search?q=x"); status != 200 || !strings.Contains(body, "Search cannot answer right now") {
		t.Errorf("search down = %d, want the page with a clear message\n%s", status, body)
	}
}

func TestOrderPageTimeTravel(t *testing.T) {
	id := uuid.NewString()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	h := fakeHistory{id: {
		envelope(t, id, 1, t0, events.OrderPlaced{Customer: events.Customer{ID: "c1", Name: events.Plain("Ada"), Email: events.Plain("ada@example.com")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1 St", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 2, UnitPrice: 1999}}}),
		envelope(t, id, 2, t0.Add(time.Hour), events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay-1"}),
		envelope(t, id, 3, t0.Add(2*time.Hour), events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "JD1"}}}),
	}}
	c := newConsole(t, h)
	c.login("sam", auth.Staff)
	status, body := c.get("/orders/" + id)
	if status != 200 || !strings.Contains(body, "status-shipped") || !strings.Contains(body, "JD1") {
		t.Fatalf("order now = %d, want it shipped\n%s", status, body)
	}
	if !strings.Contains(body, `<td class="mono">status</td><td class="mono">&#34;paid&#34;</td><td class="mono">&#34;shipped&#34;</td>`) {
		t.Errorf("the timeline does not show that v3 changed the status from paid to shipped\n%s", body)
	}
	status, body = c.get("/orders/" + id + "?version=1")
	if status != 200 || !strings.Contains(body, "version 1 of 3") || !strings.Contains(body, `<span class="status status-placed">placed</span>`) {
		t.Errorf("order at version 1 = %d, want it placed\n%s", status, body)
	}
	status, body = c.get("/orders/" + id + "?as_of=2026-11-26T11:30")
	if status != 200 || !strings.Contains(body, "version 2 of 3") || !strings.Contains(body, `status-paid">paid`) {
		t.Errorf("order as of 11:30 = %d, want version 2 (paid)", status)
	}
	if _, body = c.get("/orders/" + id + "?version=9"); !strings.Contains(body, "has versions 1 to 3") || !strings.Contains(body, "Showing it now") {
		t.Errorf("version 9 does not say the order's versions\n%s", body)
	}
	if _, body = c.get("/orders/" + id + "?as_of=2026-11-26T09:00"); !strings.Contains(body, "no such point in its history") {
		t.Errorf("as of before the order does not say so")
	}
	if status, body = c.get("/orders/" + uuid.NewString()); status != 404 || !strings.Contains(body, "No such order") {
		t.Errorf("unknown order = %d, want 404 with a message", status)
	}
}

func TestJobsRunOneOfAKind(t *testing.T) {
	js := newJobs()
	release := make(chan struct{})
	j, err := js.start("rebuild orders", "ada", func(ctx context.Context, j *job) error {
		j.Phase("replay", 10)
		j.Advance(4)
		<-release
		return errors.New("boom")
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.start("rebuild orders", "sam", func(context.Context, *job) error { return nil }); err == nil || !strings.Contains(err.Error(), "started by ada") {
		t.Errorf("second rebuild of orders = %v, want refused naming who runs one", err)
	}
	for deadline := time.Now().Add(5 * time.Second); j.view().Done != 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no progress seen")
		}
	}
	if v := j.view(); !v.Running || v.Percent != 40 || v.Phase != "replay" {
		t.Errorf("view = %+v, want running at 40%% of replay", v)
	}
	close(release)
	for deadline := time.Now().Add(5 * time.Second); j.running(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("job did not finish")
		}
	}
	v := j.view()
	b, _ := json.Marshal(v)
	if v.Running || v.Successful || v.Error != "boom" {
		t.Errorf("finished view = %s, want failed with boom", b)
	}
}

func TestDiffShowsWhatAnEventChanged(t *testing.T) {
	a := api.Order{ID: "o", Version: 1, Status: "placed", Currency: "EUR", Total: 300,
		Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 100}, {SKU: "B", Name: "b", Quantity: 2, UnitPrice: 100}}}
	first := diff(api.Order{}, a, true)
	for _, c := range first {
		if c.Before != "" {
			t.Errorf("the first event shows a value before it for %s: %q", c.Field, c.Before)
		}
	}
	if len(first) == 0 {
		t.Fatal("the first event changed nothing")
	}
	b := a
	b.Version, b.Total = 2, 100
	b.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 100}}
	got := diff(a, b, false)
	want := []change{
		{Field: "items[B].name", Before: `"b"`}, {Field: "items[B].quantity", Before: "2"}, {Field: "items[B].sku", Before: `"B"`},
		{Field: "items[B].unit_price", Before: "100"}, {Field: "total", Before: "300", After: "100"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("removing line B: diff = %v, want %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// An order whose customer's personal data was erased shows it erased (the fields are null in the view):
// the page renders, says so, and shows nothing of what was erased.
func TestOrderPageOfAnErasedOrder(t *testing.T) {
	id := uuid.NewString()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	h := fakeHistory{id: {
		envelope(t, id, 1, t0, events.OrderPlaced{Customer: events.Customer{ID: "c1", Name: events.Plain("Ada Secret"), Email: events.Plain("ada@example.com")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1 Secret St", City: "London", PostalCode: "N1", Country: "GB"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: "BK-1", Name: "Notes", Quantity: 1, UnitPrice: 1999}}}),
		envelope(t, id, 2, t0.Add(time.Hour), events.OrderCancelled{Reason: events.Plain("a secret reason"), RefundDue: 0}),
		envelope(t, id, 3, t0.Add(2*time.Hour), events.PersonalDataErased{ErasureID: "er-1", RequestedAt: t0.Add(2 * time.Hour)}),
	}}
	c := newConsole(t, h)
	c.login("sam", auth.Staff)
	status, body := c.get("/orders/" + id)
	if status != 200 || !strings.Contains(body, "<em>erased</em>") || !strings.Contains(body, "reason erased") {
		t.Fatalf("erased order = %d, want the page with its personal data shown erased\n%s", status, body)
	}
	now := body[:strings.Index(body, "Items")]
	for _, secret := range []string{"Ada Secret", "Secret St", "a secret reason"} {
		if strings.Contains(now, secret) {
			t.Errorf("the erased order's state shows %q", secret)
		}
	}
	c.search.res = searchindex.SearchResult{Total: 1, Hits: []api.Order{{ID: id, Status: "cancelled", Currency: "EUR", Total: 1999,
		Customer: api.Customer{ID: "c1"}, PersonalData: api.PersonalDataErased}}}
	if status, body := c.get("/search?q=c1"); status != 200 || !strings.Contains(body, "<em>erased</em>") {
		t.Errorf("search with an erased hit = %d, want the hit shown erased\n%s", status, body)
	}
}

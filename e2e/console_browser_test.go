//go:build integration

package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
	commandapi "github.com/orders-oss/orders/services/command/httpapi"
	"github.com/orders-oss/orders/services/console/web"
)

// browserStack is the whole pipeline in this process, on the test's own database, topic and index, behind
// the development sign-in: the command API, the relay, both projectors with their operator endpoints,
// and the console.
type browserStack struct {
	t       *testing.T
	ctx     context.Context
	console string
	command string
	token   string // an admin's bearer token for the command API
	brokers []string
	topic   string
}

func newBrowserStack(t *testing.T) *browserStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool := testenv.Postgres(t)
	if err := eventstore.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	gen, err := readmodel.Ensure(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	brokers, topic := testenv.KafkaBrokers(t), testenv.Topic(t, 3)
	osc := testenv.OpenSearch(t)
	prefix := testenv.IndexPrefix(t)
	alias := prefix + "-orders"
	groups := map[rebuild.Target]string{rebuild.Orders: testenv.Name(t) + "-orders", rebuild.Search: testenv.Name(t) + "-search"}

	// The development identity, as make up runs it: a key of its own, trusted by every server.
	devDir := t.TempDir()
	env := map[string]string{"AUTH_MODE": "dev", "AUTH_DEV_DIR": devDir}
	r := envconfig.New(func(k string) string { return env[k] })
	authCfg := auth.ReadConfig(r, func(k string) string { return env[k] })
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(authCfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	devKey, err := auth.EnsureDevKey(devDir)
	if err != nil {
		t.Fatal(err)
	}
	token, err := devKey.Sign(auth.TokenRequest{Subject: "test-admin", Role: auth.Admin, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	store := eventstore.New(pool)
	keys := testenv.Keyring(t, pool)
	commandSrv := httptest.NewServer(commandapi.New(commandapi.Config{Commands: &command.Service{Store: store, Keys: keys, MaxRetries: 5},
		Log: quiet, BodyLimit: "64KB", Ready: pool.Ping, Auth: authn}))
	t.Cleanup(commandSrv.Close)

	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	rl := relay.New(relay.Config{Pool: pool, Client: producer, Topic: topic, Log: quiet})
	t.Cleanup(rl.Close)
	go func() { _ = rl.Run(ctx, relay.DefaultPolling) }()

	ix := searchindex.New(osc, alias)
	if err := ix.Ensure(ctx, prefix+"-orders-v1"); err != nil {
		t.Fatal(err)
	}
	searchParking, err := searchindex.NewParking(ctx, osc, searchindex.ParkingIndex(alias))
	if err != nil {
		t.Fatal(err)
	}
	ordersParking, err := readmodel.NewParking(ctx, pool, gen)
	if err != nil {
		t.Fatal(err)
	}
	projectors := map[rebuild.Target]string{}
	for target, p := range map[rebuild.Target]struct {
		h       projection.Handler
		parking projection.Parking
	}{
		rebuild.Orders: {readmodel.Handler{Pool: pool, OnGeneration: ordersParking.Use, Keys: keys}, ordersParking},
		rebuild.Search: {searchindex.Handler{Index: ix, Keys: keys}, searchParking},
	} {
		cl, err := kgo.NewClient(projection.ConsumerOptions(brokers, topic, groups[target])...)
		if err != nil {
			t.Fatal(err)
		}
		loop := &projection.Loop{Client: cl, Handler: p.h, Parking: p.parking, Topic: topic, Group: groups[target], Log: quiet,
			Metrics: projection.NewMetrics()}
		done := make(chan struct{})
		go func() { defer close(done); _ = loop.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; cl.Close() })
		// Its operator endpoint (replay), behind the same authentication as the services'.
		admin := httpserver.New(httpserver.Config{Service: "projector", Log: quiet, Auth: authn, Metrics: loop.Metrics.Registry})
		live := new(atomic.Pointer[projection.Loop])
		live.Store(loop)
		projection.Routes(admin.Echo, live)
		srv := httptest.NewServer(admin)
		t.Cleanup(srv.Close)
		projectors[target] = srv.URL
	}

	key := make([]byte, 32)
	_, _ = rand.Read(key)
	h, console, err := web.New(web.Config{Log: quiet, Identity: authn.Verifier, Login: web.DevLogin{Key: devKey}, SessionKey: key,
		Search: ix, Orders: &command.Service{Store: store, Keys: keys},
		Clients: rebuild.Clients{Brokers: brokers, Pool: pool, OpenSearch: osc, Keys: keys}, Topic: topic, Alias: alias, Groups: groups,
		Projectors: projectors})
	if err != nil {
		t.Fatal(err)
	}
	go console.SampleLag(ctx, time.Second)
	consoleSrv := httptest.NewServer(h)
	t.Cleanup(consoleSrv.Close)
	return &browserStack{t: t, ctx: ctx, console: consoleSrv.URL, command: commandSrv.URL, token: token, brokers: brokers, topic: topic}
}

// call sends a command to the command API as the test's admin and returns the order it answers.
func (s *browserStack) call(method, path, body string) api.Order {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.command+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		s.t.Fatalf("%s %s = %d %s", method, path, res.StatusCode, raw)
	}
	var o api.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		s.t.Fatal(err)
	}
	return o
}

// produce puts an event of order id at version into the topic directly, as an out-of-order delivery.
func (s *browserStack) produce(id string, version int64, p events.Payload) {
	s.t.Helper()
	typ, sv, data, err := events.EncodeAt(p, 1) // plain text, as an older release wrote it
	if err != nil {
		s.t.Fatal(err)
	}
	b, _ := json.Marshal(events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: id, Version: version, Type: typ, SchemaVersion: sv,
		Data: data, OccurredAt: time.Now().UTC(), RecordedAt: time.Now().UTC()})
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(s.ctx, &kgo.Record{Topic: s.topic, Key: []byte(id), Value: b}).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// browser starts headless Chromium (Debian's, which make up installs).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no Chromium at %s (make up installs it: apt-get install chromium)", path)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancelTimeout)
	return ctx
}

// pageChecks are what every page must pass: each form field has a label, nothing is wider than the
// screen, and there is a main landmark and a title.
const pageChecks = `(() => {
  const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.outerHTML);
  const overflow = document.documentElement.scrollWidth > window.innerWidth + 1;
  return {unlabelled, overflow, width: document.documentElement.scrollWidth, title: document.title,
    main: !!document.querySelector('main')};
})()`

type checks struct {
	Unlabelled []string `json:"unlabelled"`
	Overflow   bool     `json:"overflow"`
	Width      int      `json:"width"`
	Title      string   `json:"title"`
	Main       bool     `json:"main"`
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// shoot checks the page and saves a screenshot of it at each of the two screen sizes, into dir.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	for _, size := range []struct {
		label string
		w, h  int64
		phone bool
	}{{"desktop", 1280, 800, false}, {"phone", 390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if size.phone {
			opts = append(opts, chromedp.EmulateMobile)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.w, size.h, opts...), chromedp.Sleep(200*time.Millisecond)); err != nil {
			t.Fatalf("%s at %s: %v", name, size.label, err)
		}
		c, err := chromedp.Run(ctx, chromedp.Evaluate[checks](pageChecks))
		if err != nil {
			t.Fatalf("%s at %s: %v", name, size.label, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s at %s: screenshot: %v", name, size.label, err)
		}
		if len(c.Unlabelled) > 0 {
			t.Errorf("%s: form fields without a label: %v", name, c.Unlabelled)
		}
		if c.Overflow {
			t.Errorf("%s at %dx%d: the page is %d px wide, wider than the screen", name, size.w, size.h, c.Width)
		}
		if !c.Main || c.Title == "" {
			t.Errorf("%s: no main landmark or title (%+v)", name, c)
		}
		if len(png) < 5000 {
			t.Errorf("%s at %s: a screenshot of %d bytes looks blank", name, size.label, len(png))
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s.png", name, size.label)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Back to the desktop size for the next steps.
	if err := chromedp.Do(ctx, chromedp.EmulateReset(), chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
}

// waitText waits until the element matched by sel contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q) || null; })()`, sel, want)
	poll := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(90*time.Second), chromedp.WithPollingInterval(200*time.Millisecond))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := poll(ctx, t)
		if err != nil {
			err = fmt.Errorf("waiting for %q in %s: %w", want, sel, err)
		}
		return chromedp.Void{}, err
	}
}

// navigating runs an action that loads a new page (a link, a form) and waits for that page.
func navigating(ctx context.Context, a chromedp.Action[chromedp.Void]) error {
	res, err := chromedp.RunResponse(ctx, a)
	if err == nil && res.Status >= 400 {
		err = fmt.Errorf("the page answered %d %s", res.Status, res.URL)
	}
	return err
}

// until navigates to url again and again until js is true there (a projector catching up).
func until(ctx context.Context, url, js, what string) error {
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
			return err
		}
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not seen after 60 s at %s", what, url)
		}
	}
}

func TestConsoleInABrowser(t *testing.T) {
	s := newBrowserStack(t)
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)

	// Orders placed through the command API; one is paid, so it has two versions.
	marker := "Lovelace" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	o := s.call("POST", "/orders", fmt.Sprintf(`{"customer": {"id": "cus_1042", "name": "Ada %s", "email": "ada@example.com"},
 "shipping_address": {"name": "Ada", "line1": "12 Analytical St", "line2": "", "city": "London", "postal_code": "NW1 6XE", "country": "GB"},
 "currency": "EUR", "items": [{"sku": "BK-001", "name": "Notes on the Engine", "quantity": 2, "unit_price": 1999}]}`, marker))
	s.call("POST", "/orders/"+o.ID+"/payment", `{"amount": 3998, "currency": "EUR", "reference": "pay-1"}`)
	for i := range 3 {
		s.call("POST", "/orders", fmt.Sprintf(`{"customer": {"id": "cus_%d", "name": "Grace Hopper %d", "email": "grace%d@example.com"},
 "shipping_address": {"name": "Grace", "line1": "1 Navy Way", "line2": "", "city": "Arlington", "postal_code": "22201", "country": "US"},
 "currency": "USD", "items": [{"sku": "CB-%d", "name": "COBOL manual", "quantity": 1, "unit_price": 2500}]}`, i, i, i, i))
	}
	// An order whose version 2 arrives before its version 1: both projectors park it (a gap), then
	// version 1 arrives and waits behind it; a replay applies both.
	parked := uuid.NewString()
	s.produce(parked, 2, events.PaymentConfirmed{Amount: 1000, Currency: "EUR", Reference: "early"})
	s.produce(parked, 1, events.OrderPlaced{Customer: events.Customer{ID: "cus_9", Name: events.Plain("Parked Person"), Email: events.Plain("p@example.com")},
		ShippingAddress: events.Plain(events.Address{Name: "P", Line1: "1", City: "Oslo", PostalCode: "0150", Country: "NO"}), Currency: "EUR",
		Items: []events.LineItem{{SKU: "X-1", Name: "Thing", Quantity: 1, UnitPrice: 1000}}})

	// Sign in: the development sign-in, as an admin.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(s.console+"/projectors"),
		chromedp.WaitVisible(css("#subject"))); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, shots, "login")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	if focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.className`)); err != nil || focused != "skip" {
		t.Errorf("the first Tab focuses %q (%v), want the skip link", focused, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(css("#subject"), "ops@example.com"),
		chromedp.Click(css(`input[name=role][value=admin]`))); err != nil {
		t.Fatal(err)
	}
	if err := navigating(ctx, chromedp.Submit(css("#subject"))); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	if err := chromedp.Do(ctx, waitText("h1", "Projectors")); err != nil { // back where the sign-in started
		t.Fatalf("sign in: %v", err)
	}

	// Search for the order by its customer's name; the hit links to the order.
	if err := until(ctx, s.console+"/search?q="+marker, fmt.Sprintf(`!!document.querySelector('a[href="/orders/%s"]')`, o.ID),
		"the order in the console's search"); err != nil {
		t.Fatal(err)
	}
	// A search that also shows the others, for the picture.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.console+"/search?q="), chromedp.WaitVisible(css("table"))); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, shots, "search")
	if err := chromedp.Do(ctx, chromedp.Navigate(s.console+"/search?q="+marker)); err != nil {
		t.Fatal(err)
	}
	if err := navigating(ctx, chromedp.Click(css(fmt.Sprintf(`a[href="/orders/%s"]`, o.ID)))); err != nil {
		t.Fatalf("open the order from the search: %v", err)
	}
	if err := chromedp.Do(ctx, waitText("#state-h", "Now"), waitText(".facts", "paid")); err != nil {
		t.Fatalf("open the order from the search: %v", err)
	}
	shoot(t, ctx, shots, "order")

	// Time travel: back to version 1, before the payment.
	if err := chromedp.Do(ctx, chromedp.SetValue(css("#version"), "1")); err != nil {
		t.Fatal(err)
	}
	if err := navigating(ctx, chromedp.Submit(css("#version"))); err != nil {
		t.Fatalf("time travel to version 1: %v", err)
	}
	if err := chromedp.Do(ctx, waitText(".banner", "version 1 of 2"), waitText("#state-h", "after version 1")); err != nil {
		t.Fatalf("time travel to version 1: %v", err)
	}
	if status, err := chromedp.Run(ctx, chromedp.Text(css(".facts .status"))); err != nil || status != "placed" {
		t.Errorf("the order at version 1 shows status %q (%v), want placed", status, err)
	}
	shoot(t, ctx, shots, "order-travel")
	// The slider moves by keyboard too: one step right is version 2, the order now.
	if err := chromedp.Do(ctx, chromedp.Focus(css("#version-range"))); err != nil {
		t.Fatal(err)
	}
	if err := navigating(ctx, chromedp.KeyEvent(kb.ArrowRight)); err != nil {
		t.Fatalf("move the time-travel slider by keyboard: %v", err)
	}
	if err := chromedp.Do(ctx, waitText("#state-h", "Now")); err != nil {
		t.Fatalf("move the time-travel slider by keyboard: %v", err)
	}

	// Projectors: lag and the live generations.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.console+"/projectors"), waitText("#models-h", "Read models")); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, shots, "projectors")

	// The parked order, replayed from the console in each read model.
	for _, target := range []string{"orders", "search"} {
		button := fmt.Sprintf(`form[action="/parked/%s/%s/replay"] button`, target, parked)
		if err := until(ctx, s.console+"/parked", fmt.Sprintf(`!!document.querySelector(%q)`, button),
			"order "+parked+" parked in "+target); err != nil {
			t.Fatal(err)
		}
		if target == "orders" {
			shoot(t, ctx, shots, "parked")
		}
		if err := navigating(ctx, chromedp.Click(css(button))); err != nil {
			t.Fatalf("replay %s in %s: %v", parked, target, err)
		}
		if err := chromedp.Do(ctx, waitText(".success", "Replayed "+parked)); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Text(css("main")))
			t.Fatalf("replay %s in %s: %v\n%s", parked, target, err, page)
		}
	}

	// A rebuild of the orders tables, to its end; then its verify.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.console+"/rebuild"), chromedp.WaitVisible(css(`input[name=target][value=orders]`))); err != nil {
		t.Fatal(err)
	}
	shoot(t, ctx, shots, "rebuild")
	if err := navigating(ctx, chromedp.Click(css(`form[action="/rebuild"] button`))); err != nil {
		t.Fatalf("start a rebuild: %v", err)
	}
	job, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(job, "/jobs/") {
		t.Fatalf("after starting the rebuild the browser is at %q (%v), want its job page", job, err)
	}
	shoot(t, ctx, shots, "rebuild-running")
	// The page follows the job by itself; reading it again until it is done works without the script too.
	if err := until(ctx, job, `document.querySelector('#job-state').textContent.startsWith('Done') || document.querySelector('#job-state').textContent.startsWith('Failed')`,
		"the end of the rebuild"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, waitText("#job-state", "Done"), waitText("#rep-h", "equals the event store")); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Text(css("main")))
		t.Fatalf("rebuild from the console: %v\n%s", err, page)
	}
	shoot(t, ctx, shots, "rebuild-done")
}

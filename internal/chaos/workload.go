package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

// Kind is a kind of command the workload sends.
type Kind string

const (
	Place   Kind = "place"
	AddItem Kind = "add-item"
	Pay     Kind = "pay"
	Ship    Kind = "ship"
	Deliver Kind = "deliver"
	Cancel  Kind = "cancel"
	// LateAddItem is an item added by the late-commit fault, in a transaction it keeps open.
	LateAddItem Kind = "late-add-item"
)

// EventType is the event a command of the kind records when it succeeds.
func (k Kind) EventType() string {
	switch k {
	case Place:
		return events.TypeOrderPlaced
	case AddItem, LateAddItem:
		return events.TypeOrderItemAdded
	case Pay:
		return events.TypePaymentConfirmed
	case Ship:
		return events.TypeOrderShipped
	case Deliver:
		return events.TypeOrderDelivered
	case Cancel:
		return events.TypeOrderCancelled
	}
	return ""
}

// Command is one command the suite sent and what came of it. Its ID is also its X-Correlation-ID,
// so the events it recorded carry it in their metadata; Token is the unique value its event's data
// carries (the first sku of a placed order, an added sku, a payment reference, a tracking number, a
// cancellation reason; none for a delivery).
type Command struct {
	ID       string    `json:"id"`
	Scenario string    `json:"scenario"`
	Kind     Kind      `json:"kind"`
	OrderID  string    `json:"order_id,omitempty"`
	Token    string    `json:"token,omitempty"`
	Outcome  Outcome   `json:"outcome"`
	Status   int       `json:"status,omitempty"`
	Error    string    `json:"error,omitempty"`
	Attempts int       `json:"attempts"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
}

// Recorder hands out unique command ids and keeps every finished command.
type Recorder struct {
	Run string // unique per run: every id and token carries it
	seq atomic.Int64

	mu   sync.Mutex
	cmds []Command
}

// NewRecorder returns a recorder for a run with a fresh random id.
func NewRecorder() *Recorder {
	return &Recorder{Run: fmt.Sprintf("%06x", rand.Uint32()&0xffffff)}
}

// Prefix is what every command id of the run starts with.
func (r *Recorder) Prefix() string { return "chaos-" + r.Run + "-" }

// New starts a command: a fresh id and token.
func (r *Recorder) New(scenario string, kind Kind, orderID string) *Command {
	n := r.seq.Add(1)
	c := &Command{ID: fmt.Sprintf("%s%d", r.Prefix(), n), Scenario: scenario, Kind: kind, OrderID: orderID, Start: time.Now()}
	switch kind {
	case Place, AddItem, LateAddItem:
		c.Token = fmt.Sprintf("CH-%s-%d", r.Run, n)
	case Pay:
		c.Token = fmt.Sprintf("pay-%s-%d", r.Run, n)
	case Ship:
		c.Token = fmt.Sprintf("trk-%s-%d", r.Run, n)
	case Cancel:
		c.Token = fmt.Sprintf("cancel %s-%d", r.Run, n)
	}
	return c
}

// Add records a finished command.
func (r *Recorder) Add(c Command) {
	if c.End.IsZero() {
		c.End = time.Now()
	}
	r.mu.Lock()
	r.cmds = append(r.cmds, c)
	r.mu.Unlock()
}

// Commands returns the commands of a scenario ("" for all), in the order they finished.
func (r *Recorder) Commands(scenario string) []Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Command
	for _, c := range r.cmds {
		if scenario == "" || c.Scenario == scenario {
			out = append(out, c)
		}
	}
	return out
}

// Workload is a number of concurrent clients, each taking orders through realistic journeys: place
// (with an Idempotency-Key), sometimes add items, then mostly pay, ship and deliver, sometimes cancel,
// and now and then a command the rules refuse (a definite failure). Every command carries a unique
// value. A command that was not sent (connection refused) or not handled (429, rate limited) is sent
// again; a placement whose outcome is unknown is retried with the same key and body; any other
// unknown outcome stays unknown.
type Workload struct {
	Client   *Client
	Rec      *Recorder
	Scenario string
	Clients  int
	Rate     float64 // commands per second, all clients together

	stop    atomic.Bool
	wg      sync.WaitGroup
	errOnce sync.Once
	err     error
}

// Start runs the clients until Stop.
func (w *Workload) Start(ctx context.Context) {
	for i := range w.Clients {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			rnd := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
			for !w.stop.Load() && ctx.Err() == nil {
				w.journey(ctx, rnd)
			}
		}()
	}
}

// Stop lets every client finish the command it is sending, then returns the first error that
// stopped the workload (ErrUnauthorized), if any.
func (w *Workload) Stop() error {
	w.stop.Store(true)
	w.wg.Wait()
	return w.err
}

func (w *Workload) fail(err error) {
	w.errOnce.Do(func() { w.err = err })
	w.stop.Store(true)
}

// pause is a client's think time between commands: Clients/Rate on average.
func (w *Workload) pause(rnd *rand.Rand) {
	mean := float64(w.Clients) / max(w.Rate, 0.1)
	time.Sleep(time.Duration((0.5 + rnd.Float64()) * mean * float64(time.Second)))
}

// Order is an order the workload placed.
type Order struct {
	ID       string
	Total    int64
	Currency string
}

// Send runs one command through the API and records it: a command not sent (Refused) is sent again
// for up to 15 s, and with retryUnknown (an Idempotency-Key makes it safe) an unknown outcome too, for
// up to 30 s. The answer is the last attempt's.
func (w *Workload) Send(ctx context.Context, c *Command, method, path string, body []byte, header map[string]string, retryUnknown bool) Answer {
	if header == nil {
		header = map[string]string{}
	}
	header["X-Correlation-ID"] = c.ID
	start := time.Now()
	var a Answer
	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		c.Attempts++
		a = w.Client.Send(ctx, method, path, body, header)
		if errors.Is(a.Err, ErrUnauthorized) {
			w.fail(a.Err)
			break
		}
		// Not sent, or refused before it was handled (rate limited): the same request again.
		notHandled := a.Outcome == Refused || a.Status == http.StatusTooManyRequests
		if a.Status == http.StatusTooManyRequests {
			if s, err := strconv.Atoi(a.Header.Get("Retry-After")); err == nil && s > 0 {
				backoff = min(time.Duration(s)*time.Second, 5*time.Second)
			}
		}
		retry := notHandled && time.Since(start) < 15*time.Second ||
			retryUnknown && a.Outcome == Unknown && time.Since(start) < 30*time.Second
		if !retry || ctx.Err() != nil {
			break
		}
		time.Sleep(backoff)
	}
	c.Outcome, c.Status, c.End = a.Outcome, a.Status, time.Now()
	if a.Err != nil {
		c.Error = a.Err.Error()
	} else if a.Outcome != OK {
		c.Error = strings.TrimSpace(string(a.Body))
		if len(c.Error) > 300 {
			c.Error = c.Error[:300]
		}
	}
	w.Rec.Add(*c)
	return a
}

var currencies = []string{"EUR", "USD", "GBP"}

// PlaceBody is a valid order whose first line has sku token.
func PlaceBody(token string, rnd *rand.Rand) ([]byte, Order) {
	n := rnd.IntN(1000)
	o := Order{Currency: currencies[rnd.IntN(len(currencies))]}
	items := []events.LineItem{}
	for i := range 1 + rnd.IntN(3) {
		sku := token
		if i > 0 {
			sku = fmt.Sprintf("%s-%d", token, i+1)
		}
		it := events.LineItem{SKU: sku, Name: "Chaos item " + sku, Quantity: int64(1 + rnd.IntN(3)), UnitPrice: int64(100 + rnd.IntN(5000))}
		o.Total += it.Quantity * it.UnitPrice
		items = append(items, it)
	}
	body, _ := json.Marshal(map[string]any{
		"customer": map[string]string{"id": fmt.Sprintf("cus_chaos_%d", n), "name": fmt.Sprintf("Chaos Client %d", n),
			"email": fmt.Sprintf("chaos%d@example.com", n)},
		"shipping_address": events.Address{Name: fmt.Sprintf("Chaos Client %d", n), Line1: fmt.Sprintf("%d Fault Lane", 1+n%90),
			City: "Resilience", PostalCode: fmt.Sprintf("%05d", n), Country: "DE"},
		"currency": o.Currency,
		"items":    items,
	})
	return body, o
}

// PlaceOrder places an order (retried with the same Idempotency-Key while its outcome is unknown);
// ok is false when no order came of it.
func (w *Workload) PlaceOrder(ctx context.Context, rnd *rand.Rand) (Order, bool) {
	c := w.Rec.New(w.Scenario, Place, "")
	body, o := PlaceBody(c.Token, rnd)
	a := w.Send(ctx, c, http.MethodPost, "/orders", body, map[string]string{"Idempotency-Key": "key-" + c.ID}, true)
	if a.Outcome != OK {
		return o, false
	}
	// The command is recorded before the id is known: record the id on the stored copy too.
	o.ID = strings.TrimPrefix(a.Header.Get("Location"), "/orders/")
	w.Rec.setOrder(c.ID, o.ID)
	return o, o.ID != ""
}

func (r *Recorder) setOrder(id, orderID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.cmds) - 1; i >= 0; i-- {
		if r.cmds[i].ID == id {
			r.cmds[i].OrderID = orderID
			return
		}
	}
}

// On sends a command of kind on order o; amount is the payment (ignored otherwise).
func (w *Workload) On(ctx context.Context, o *Order, kind Kind, amount int64, rnd *rand.Rand) Answer {
	c := w.Rec.New(w.Scenario, kind, o.ID)
	var path string
	var body any
	switch kind {
	case AddItem:
		path, body = "/items", events.LineItem{SKU: c.Token, Name: "Chaos extra " + c.Token, Quantity: int64(1 + rnd.IntN(2)), UnitPrice: int64(100 + rnd.IntN(900))}
	case Pay:
		path, body = "/payment", map[string]any{"amount": amount, "currency": o.Currency, "reference": c.Token}
	case Ship:
		path, body = "/shipment", map[string]any{"carrier": "DHL", "tracking_number": c.Token}
	case Deliver:
		path, body = "/delivery", map[string]any{}
	case Cancel:
		path, body = "/cancellation", map[string]any{"reason": c.Token}
	}
	raw, _ := json.Marshal(body)
	a := w.Send(ctx, c, http.MethodPost, "/orders/"+o.ID+path, raw, nil, false)
	if a.Outcome == OK {
		var v struct {
			Total int64 `json:"total"` // all the workload reads of an answer
		}
		if json.Unmarshal(a.Body, &v) == nil {
			o.Total = v.Total
		}
	}
	return a
}

// journey takes one order from placement to its end. The mix: 8% cancelled before payment, 8% left
// open, the rest paid; of those 5% cancelled (refund), 8% left paid, the rest shipped; of those 12%
// left in transit, the rest delivered. A quarter get extra items first. Mistakes the rules refuse,
// each in 2-3% of journeys: ship before paying, pay a wrong amount, pay twice, cancel after shipping,
// deliver twice.
func (w *Workload) journey(ctx context.Context, rnd *rand.Rand) {
	o, ok := w.PlaceOrder(ctx, rnd)
	w.pause(rnd)
	if !ok || w.stop.Load() {
		return
	}
	steps := []func() bool{} // each returns whether the journey goes on
	step := func(kind Kind, amount func() int64) func() bool {
		return func() bool { w.On(ctx, &o, kind, amount(), rnd); return true }
	}
	none := func() int64 { return 0 }
	total := func() int64 { return o.Total }
	end := func() bool { return false }
	if rnd.Float64() < 0.25 {
		for range 1 + rnd.IntN(2) {
			steps = append(steps, step(AddItem, none))
		}
	}
	r := rnd.Float64()
	switch {
	case r < 0.08:
		steps = append(steps, step(Cancel, none), end)
	case r < 0.16:
		steps = append(steps, end)
	}
	if rnd.Float64() < 0.03 {
		steps = append(steps, step(Ship, none)) // not paid yet: refused
	}
	if rnd.Float64() < 0.03 {
		steps = append(steps, step(Pay, func() int64 { return o.Total + 1 })) // wrong amount: refused
	}
	steps = append(steps, step(Pay, total))
	if rnd.Float64() < 0.02 {
		steps = append(steps, step(Pay, total)) // twice: refused
	}
	switch r := rnd.Float64(); {
	case r < 0.05:
		steps = append(steps, step(Cancel, none), end)
	case r < 0.13:
		steps = append(steps, end)
	}
	steps = append(steps, step(Ship, none))
	if rnd.Float64() < 0.03 {
		steps = append(steps, step(Cancel, none)) // after shipment: refused
	}
	if rnd.Float64() < 0.12 {
		steps = append(steps, end)
	}
	steps = append(steps, step(Deliver, none))
	if rnd.Float64() < 0.02 {
		steps = append(steps, step(Deliver, none)) // twice: refused
	}
	for _, s := range steps {
		if w.stop.Load() || ctx.Err() != nil || !s() {
			return
		}
		w.pause(rnd)
	}
}

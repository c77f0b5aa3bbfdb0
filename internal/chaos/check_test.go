package chaos

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/pkg/events"
)

// world is a synthetic run: commands, the store they produced and the topic the relay filled.
type world struct {
	cmds  []Command
	store []events.Envelope
	topic []TopicRecord
	next  map[string]int64 // order -> last version
}

const prefix = "chaos-test-"

func newWorld() *world { return &world{next: map[string]int64{}} }

// event stores an event of cmd on order (with the command's token in its data) and publishes it.
func (w *world) event(order string, kind Kind, corr, token string) events.Envelope {
	var p events.Payload
	switch kind {
	case Place:
		p = events.OrderPlaced{Customer: events.Customer{ID: "c", Name: events.Plain("n"), Email: events.Plain("e@example.com")},
			ShippingAddress: events.Plain(events.Address{Name: "n", Line1: "1", City: "c", PostalCode: "1", Country: "DE"}), Currency: "EUR",
			Items: []events.LineItem{{SKU: token, Name: "x", Quantity: 1, UnitPrice: 100}}}
	case AddItem, LateAddItem:
		p = events.OrderItemAdded{Item: events.LineItem{SKU: token, Name: "x", Quantity: 1, UnitPrice: 100}}
	case Pay:
		p = events.PaymentConfirmed{Amount: 100, Currency: "EUR", Reference: token}
	case Ship:
		p = events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: token}}}
	case Deliver:
		p = events.OrderDelivered{}
	case Cancel:
		p = events.OrderCancelled{Reason: events.Plain(token)}
	}
	typ, sv, data, err := events.EncodeAt(p, 1) // plain text: the checker reads a cancellation's reason only so
	if err != nil {
		panic(err)
	}
	w.next[order]++
	e := events.Envelope{Position: int64(len(w.store) + 1), EventID: uuid.Must(uuid.NewV7()), OrderID: order, Version: w.next[order],
		Type: typ, SchemaVersion: sv, Data: data, Metadata: events.Metadata{CorrelationID: corr}}
	w.store = append(w.store, e)
	w.publish(e)
	return e
}

func (w *world) publish(e events.Envelope) {
	w.topic = append(w.topic, TopicRecord{Partition: partitionOf(e.OrderID), Offset: int64(len(w.topic)), Key: e.OrderID,
		EventID: e.EventID.String(), OrderID: e.OrderID, Version: e.Version, Type: e.Type})
}

func partitionOf(order string) int32 { return int32(order[len(order)-1]) % 3 }

// command records a command with the outcome; applied says whether its event was stored.
func (w *world) command(order string, kind Kind, outcome Outcome, applied bool) Command {
	n := len(w.cmds) + 1
	c := Command{ID: fmt.Sprintf("%s%d", prefix, n), Scenario: "s", Kind: kind, OrderID: order, Outcome: outcome, Attempts: 1}
	if kind != Deliver {
		c.Token = fmt.Sprintf("tok-%d", n)
	}
	if applied {
		w.event(order, kind, c.ID, c.Token)
	}
	w.cmds = append(w.cmds, c)
	return c
}

// healthy is a run in which every promise holds: three orders through their journeys, failures
// that recorded nothing, unknown outcomes that did and did not apply.
func healthy() *world {
	w := newWorld()
	for _, o := range []string{"order-a", "order-b", "order-c"} {
		w.command(o, Place, OK, true)
		w.command(o, Ship, Failed, false) // not paid
		w.command(o, Pay, OK, true)
		w.command(o, Ship, Unknown, true)
		w.command(o, Deliver, Unknown, false)
		w.command(o, Deliver, Refused, false)
	}
	return w
}

func (w *world) evidence() Evidence {
	return Evidence{Prefix: prefix, Commands: w.cmds, Scenario: "s", Store: w.store, Topic: w.topic,
		Models: []ModelEvidence{{Name: "orders", Report: rebuild.Report{Differences: []rebuild.Difference{}}, Parked: map[string]ParkedOrder{}},
			{Name: "search", Report: rebuild.Report{Differences: []rebuild.Difference{}}, Parked: map[string]ParkedOrder{}}}}
}

func promises(v Verdict) string {
	var out []string
	for _, f := range v.Findings {
		out = append(out, f.Promise+": "+f.Detail)
	}
	return strings.Join(out, "\n")
}

func TestCheckHealthyRun(t *testing.T) {
	v := Check(healthy().evidence())
	if !v.OK() {
		t.Fatalf("Check(healthy) has findings:\n%s", promises(v))
	}
	if v.Commands[OK] != 6 || v.Commands[Failed] != 3 || v.Commands[Unknown] != 6 || v.Commands[Refused] != 3 {
		t.Errorf("Commands = %v, want ok 6, failed 3, unknown 6, refused 3", v.Commands)
	}
	if v.UnknownApplied != 3 || v.Lost != 0 || v.Duplicated != 0 || v.Phantom != 0 {
		t.Errorf("UnknownApplied %d Lost %d Duplicated %d Phantom %d, want 3 0 0 0", v.UnknownApplied, v.Lost, v.Duplicated, v.Phantom)
	}
	if v.Topic.Events != 9 || v.Topic.Missing != 0 {
		t.Errorf("Topic = %+v, want 9 events, none missing", v.Topic)
	}
}

// Each case breaks one promise of a healthy run; the checker must say which.
func TestCheckFindsEachBrokenPromise(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(w *world, e *Evidence)
		promise string
		counts  func(v Verdict) bool
	}{
		{"an acknowledged command without its event", func(w *world, e *Evidence) {
			w.command("order-a", AddItem, OK, false)
			e.Commands = w.cmds
		}, PromiseOK, func(v Verdict) bool { return v.Lost == 1 }},
		{"an acknowledged command recorded twice", func(w *world, e *Evidence) {
			c := w.command("order-b", AddItem, OK, true)
			w.event("order-b", AddItem, c.ID, c.Token)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseOK, func(v Verdict) bool { return v.Duplicated == 1 }},
		{"an acknowledged command recorded on another order", func(w *world, e *Evidence) {
			c := w.command("order-b", AddItem, OK, false)
			w.event("order-c", AddItem, c.ID, c.Token)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseOK, nil},
		{"an acknowledged command recorded as another event", func(w *world, e *Evidence) {
			c := w.command("order-b", AddItem, OK, false)
			w.event("order-b", Cancel, c.ID, c.Token)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseOK, nil},
		{"a refused command that recorded an event", func(w *world, e *Evidence) {
			w.command("order-a", Cancel, Failed, true)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseFailed, func(v Verdict) bool { return v.Phantom == 1 }},
		{"an unsent command that recorded an event", func(w *world, e *Evidence) {
			w.command("order-a", Cancel, Refused, true)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseFailed, func(v Verdict) bool { return v.Phantom == 1 }},
		{"an event of the run no command sent", func(w *world, e *Evidence) {
			w.event("order-a", AddItem, prefix+"999", "tok-999")
			e.Store, e.Topic = w.store, w.topic
		}, PromiseFailed, func(v Verdict) bool { return v.Phantom == 1 }},
		{"an unknown command recorded twice", func(w *world, e *Evidence) {
			c := w.command("order-c", AddItem, Unknown, true)
			w.event("order-c", AddItem, c.ID, c.Token)
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseUnknown, func(v Verdict) bool { return v.Duplicated == 1 }},
		{"a unique value recorded by two commands", func(w *world, e *Evidence) {
			c := w.command("order-a", AddItem, OK, true)
			w.event("order-b", AddItem, prefix+"x", c.Token) // another event carrying its sku
			w.cmds = append(w.cmds, Command{ID: prefix + "x", Scenario: "s", Kind: AddItem, OrderID: "order-b", Token: "other", Outcome: Unknown})
			e.Commands, e.Store, e.Topic = w.cmds, w.store, w.topic
		}, PromiseUnique, func(v Verdict) bool { return v.Duplicated >= 1 }},
		{"a stored event missing from the topic", func(w *world, e *Evidence) {
			e.Topic = append(e.Topic[:4:4], e.Topic[5:]...)
		}, PromiseTopic, func(v Verdict) bool { return v.Topic.Missing == 1 }},
		{"a record keyed by another order", func(w *world, e *Evidence) {
			e.Topic[2].Key = "order-x"
		}, PromiseTopic, nil},
		{"an order's versions first appearing out of order", func(w *world, e *Evidence) {
			// order-a's place and pay: swap their offsets in the topic
			var idx []int
			for i, r := range e.Topic {
				if r.OrderID == "order-a" {
					idx = append(idx, i)
				}
			}
			e.Topic[idx[0]].Offset, e.Topic[idx[1]].Offset = e.Topic[idx[1]].Offset, e.Topic[idx[0]].Offset
		}, PromiseTopic, func(v Verdict) bool { return v.Topic.OutOfOrder == 1 }},
		{"a record no decoder can read", func(w *world, e *Evidence) {
			e.Topic = append(e.Topic, DecodeRecord(0, 99, []byte("order-a"), []byte("{garbage")))
		}, PromiseTopic, nil},
		{"a record of an event the store does not have", func(w *world, e *Evidence) {
			r := e.Topic[0]
			r.EventID, r.Offset = uuid.NewString(), 100
			e.Topic = append(e.Topic, r)
		}, PromiseTopic, nil},
		{"a read model behind the store", func(w *world, e *Evidence) {
			e.Models[1].Report.Differences = append(e.Models[1].Report.Differences,
				rebuild.Difference{Kind: rebuild.Version, OrderID: "order-b", StoreVersion: 3, ModelVersion: 2})
		}, PromiseModels, nil},
		{"a read model that could not be verified", func(w *world, e *Evidence) {
			e.Models[0].Err = fmt.Errorf("connection refused")
		}, PromiseModels, nil},
		{"an order parked for another reason than a poison record", func(w *world, e *Evidence) {
			e.Models[0].Parked["order-c"] = ParkedOrder{Error: "gap", Records: 1}
		}, PromiseParking, nil},
		{"a poisoned order that is not parked", func(w *world, e *Evidence) {
			e.Poisoned = map[string]int64{"order-c": 1}
			for i := range e.Models {
				e.Models[i].Report.Differences = append(e.Models[i].Report.Differences,
					rebuild.Difference{Kind: rebuild.Version, OrderID: "order-c", StoreVersion: 3, ModelVersion: 1})
			}
			e.Models[0].Parked["order-c"] = ParkedOrder{Poison: true, Records: 3}
		}, PromiseParking, nil},
		{"a poisoned order applied past its poison", func(w *world, e *Evidence) {
			e.Poisoned = map[string]int64{"order-c": 1}
			for i := range e.Models {
				e.Models[i].Parked["order-c"] = ParkedOrder{Poison: true, Records: 3}
			}
			e.Models[0].Report.Differences = append(e.Models[0].Report.Differences,
				rebuild.Difference{Kind: rebuild.Version, OrderID: "order-c", StoreVersion: 3, ModelVersion: 2})
		}, PromiseParking, nil},
		{"parked orders the store does not know", func(w *world, e *Evidence) {
			e.Models[1].ParkedCount = 2
		}, PromiseParking, nil},
		{"a late commit that nothing overtook", func(w *world, e *Evidence) {
			e.Late = []LateRecord{{OrderID: "order-a", Position: 9, Overtaken: 0}}
		}, PromiseLate, nil},
		{"a run in which no command succeeded", func(w *world, e *Evidence) {
			for i := range e.Commands {
				e.Commands[i].Scenario = "other"
			}
			e.Commands = append(e.Commands, Command{ID: prefix + "f", Scenario: "s", Kind: Pay, Outcome: Failed})
		}, PromiseWorkload, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := healthy()
			e := w.evidence()
			tc.breakIt(w, &e)
			v := Check(e)
			if v.OK() {
				t.Fatalf("Check found nothing; want a finding on %q", tc.promise)
			}
			found := false
			for _, f := range v.Findings {
				found = found || f.Promise == tc.promise
			}
			if !found {
				t.Errorf("Check findings:\n%s\nwant one on %q", promises(v), tc.promise)
			}
			if tc.counts != nil && !tc.counts(v) {
				t.Errorf("counts wrong: Lost %d Duplicated %d Phantom %d Topic %+v", v.Lost, v.Duplicated, v.Phantom, v.Topic)
			}
		})
	}
}

// What at-least-once delivery and a poison record legitimately leave must not be findings.
func TestCheckAcceptsRedeliveryAndPoison(t *testing.T) {
	w := healthy()
	// The relay sends order-b's first two events again (a crash between the ack and the delete).
	for _, e := range w.store {
		if e.OrderID == "order-b" && e.Version <= 2 {
			w.publish(e)
		}
	}
	// A poison record for order-c after its first event; its later events wait behind it.
	poisonRec := DecodeRecord(partitionOf("order-c"), int64(len(w.topic)), []byte("order-c"), []byte(PoisonValue("test", "order-c")))
	w.topic = append(w.topic, poisonRec)
	e := w.evidence()
	e.Poisoned = map[string]int64{"order-c": 1}
	for i := range e.Models {
		e.Models[i].Report.Differences = append(e.Models[i].Report.Differences,
			rebuild.Difference{Kind: rebuild.Version, OrderID: "order-c", StoreVersion: 3, ModelVersion: 1})
		e.Models[i].Parked["order-c"] = ParkedOrder{Poison: true, Records: 3}
		// An earlier run's poisoned order, parked at whatever version.
		e.Models[i].Report.Differences = append(e.Models[i].Report.Differences,
			rebuild.Difference{Kind: rebuild.Version, OrderID: "order-a", StoreVersion: 3, ModelVersion: 2})
		e.Models[i].Parked["order-a"] = ParkedOrder{Poison: true, Records: 1}
		e.Models[i].ParkedCount = 2
	}
	e.Late = []LateRecord{{OrderID: "order-a", Position: 2, Overtaken: 7}}
	v := Check(e)
	if !v.OK() {
		t.Fatalf("Check has findings:\n%s", promises(v))
	}
	if v.Topic.Redelivered != 2 || v.Topic.Poison != 1 {
		t.Errorf("Topic = %+v, want 2 redelivered and 1 poison", v.Topic)
	}
}

func TestCountTopic(t *testing.T) {
	w := healthy()
	w.publish(w.store[0])
	w.publish(w.store[0])
	w.topic = append(w.topic, DecodeRecord(0, 50, []byte("o"), []byte(PoisonValue("r", "o"))), DecodeRecord(0, 51, []byte("o"), []byte("junk")))
	if got, want := CountTopic(w.topic), (TopicStats{Records: 13, Events: 9, Redelivered: 2, Poison: 1}); got != want {
		t.Errorf("CountTopic = %+v, want %+v", got, want)
	}
}

func TestDecodeRecord(t *testing.T) {
	env := events.Envelope{EventID: uuid.Must(uuid.NewV7()), OrderID: "o-1", Version: 3, Type: events.TypeOrderShipped,
		SchemaVersion: 1, Data: json.RawMessage(`{}`), OccurredAt: time.Now()}
	raw, _ := json.Marshal(env)
	for _, tc := range []struct {
		value          string
		poison, broken bool
	}{
		{string(raw), false, false},
		{PoisonValue("r", "o-1"), true, false},
		{"not json", false, true},
		{`{"order_id":"o-1"}`, false, true},
	} {
		r := DecodeRecord(1, 2, []byte("o-1"), []byte(tc.value))
		if r.Poison != tc.poison || (r.DecodeErr != "") != tc.broken {
			t.Errorf("DecodeRecord(%.30q) = poison %v, error %q; want poison %v, broken %v", tc.value, r.Poison, r.DecodeErr, tc.poison, tc.broken)
		}
		if !tc.poison && !tc.broken && (r.EventID != env.EventID.String() || r.Version != 3 || r.OrderID != "o-1") {
			t.Errorf("DecodeRecord(envelope) = %+v", r)
		}
	}
}

// A cancellation whose reason is sealed (OrderCancelled v2) is its command's by type, order and
// correlation id; one in plain text must still carry its unique value.
func TestCheckASealedCancellation(t *testing.T) {
	w := healthy()
	c := w.command("order-a", Cancel, OK, false)
	typ, sv, data, err := events.Encode(events.OrderCancelled{Reason: events.SealedAs[string](events.Sealed{KeyID: "k1", Ciphertext: "c2VhbGVk"})})
	if err != nil {
		t.Fatal(err)
	}
	w.next["order-a"]++
	sealed := events.Envelope{Position: int64(len(w.store) + 1), EventID: uuid.Must(uuid.NewV7()), OrderID: "order-a", Version: w.next["order-a"],
		Type: typ, SchemaVersion: sv, Data: data, Metadata: events.Metadata{CorrelationID: c.ID}}
	w.store = append(w.store, sealed)
	w.publish(sealed)
	if v := Check(w.evidence()); !v.OK() {
		t.Fatalf("a sealed cancellation gives findings:\n%s", promises(v))
	}
	// In plain text, a reason that is not the command's is a finding.
	w = healthy()
	c = w.command("order-b", Cancel, OK, false)
	w.event("order-b", Cancel, c.ID, "someone else's reason")
	if v := Check(w.evidence()); v.OK() || !strings.Contains(promises(v), "does not carry its unique value") {
		t.Errorf("a plain cancellation without its value: %s", promises(v))
	}
}

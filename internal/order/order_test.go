package order

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

var (
	ada  = events.Customer{ID: "cus_1042", Name: "Ada Lovelace", Email: "ada@example.com"}
	home = events.Address{Name: "Ada Lovelace", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"}
	book = events.LineItem{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}
	pen  = events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 250}

	placed    = events.OrderPlaced{Customer: ada, ShippingAddress: home, Currency: "EUR", Items: []events.LineItem{book}}
	paid      = events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay_1"}
	shipped   = events.OrderShipped{Carrier: "DHL", TrackingNumber: "JD0001"}
	delivered = events.OrderDelivered{}
	cancelled = events.OrderCancelled{Reason: "changed my mind"}
)

// given folds past payloads into a state, as the event store would replay them.
func given(t *testing.T, past ...events.Payload) State {
	t.Helper()
	var s State
	for i, p := range past {
		s = Evolve(s, events.Envelope{OrderID: "o-1", Version: int64(i + 1), OccurredAt: time.Unix(int64(i), 0).UTC()}, p)
	}
	return s
}

type decision func(State) ([]events.Payload, error)

func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		given    []events.Payload
		when     decision
		want     []events.Payload
		wantCode string
		wantKind Kind
	}{
		// add item
		{"add a new sku", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.AddItem(pen) },
			[]events.Payload{events.OrderItemAdded{Item: pen}}, "", 0},
		{"add an existing sku adds to its quantity", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.AddItem(book) },
			[]events.Payload{events.OrderItemAdded{Item: book}}, "", 0},
		{"add after payment", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.AddItem(pen) },
			nil, CodeItemsLocked, RuleViolated},
		{"add beyond the quantity limit of a line", []events.Payload{placed}, func(s State) ([]events.Payload, error) {
			return s.AddItem(events.LineItem{SKU: "BK-001", Name: "x", Quantity: MaxQuantity - 1, UnitPrice: 1})
		}, nil, CodeQuantityOverflow, RuleViolated},
		{"add a 101st line", []events.Payload{placedWith(100)}, func(s State) ([]events.Payload, error) { return s.AddItem(pen) },
			nil, CodeTooManyItems, RuleViolated},
		{"add with an overflowing total", []events.Payload{placed}, func(s State) ([]events.Payload, error) {
			return s.AddItem(events.LineItem{SKU: "BIG", Name: "x", Quantity: 10_000, UnitPrice: 1 << 62})
		}, nil, CodeTotalOverflow, RuleViolated},
		{"add an invalid item", []events.Payload{placed}, func(s State) ([]events.Payload, error) {
			return s.AddItem(events.LineItem{SKU: "", Name: "x", Quantity: 0, UnitPrice: -1})
		}, nil, CodeValidation, Invalid},
		{"add to an unknown order", nil, func(s State) ([]events.Payload, error) { return s.AddItem(pen) },
			nil, CodeNotFound, NotFound},
		// remove item
		{"remove a line", []events.Payload{placed, events.OrderItemAdded{Item: pen}}, func(s State) ([]events.Payload, error) { return s.RemoveItem("PN-7") },
			[]events.Payload{events.OrderItemRemoved{SKU: "PN-7"}}, "", 0},
		{"remove the last line", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.RemoveItem("BK-001") },
			nil, CodeLastItem, RuleViolated},
		{"remove an unknown sku", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.RemoveItem("NOPE") },
			nil, CodeUnknownSKU, RuleViolated},
		{"remove after payment", []events.Payload{placed, events.OrderItemAdded{Item: pen}, events.PaymentConfirmed{Amount: 4248, Currency: "EUR", Reference: "r"}},
			func(s State) ([]events.Payload, error) { return s.RemoveItem("PN-7") }, nil, CodeItemsLocked, RuleViolated},
		// address
		{"change the address when paid", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.ChangeShippingAddress(home) },
			[]events.Payload{events.ShippingAddressChanged{ShippingAddress: home}}, "", 0},
		{"change the address after shipment", []events.Payload{placed, paid, shipped}, func(s State) ([]events.Payload, error) { return s.ChangeShippingAddress(home) },
			nil, CodeAddressLocked, RuleViolated},
		{"change to an invalid address", []events.Payload{placed}, func(s State) ([]events.Payload, error) {
			return s.ChangeShippingAddress(events.Address{Country: "gb"})
		}, nil, CodeValidation, Invalid},
		// payment
		{"pay the total", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.ConfirmPayment(3998, "EUR", "pay_1") },
			[]events.Payload{paid}, "", 0},
		{"pay a different amount", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.ConfirmPayment(3997, "EUR", "pay_1") },
			nil, CodePaymentMismatch, RuleViolated},
		{"pay in another currency", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.ConfirmPayment(3998, "USD", "pay_1") },
			nil, CodePaymentMismatch, RuleViolated},
		{"pay twice", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.ConfirmPayment(3998, "EUR", "pay_2") },
			nil, CodeAlreadyPaid, RuleViolated},
		{"pay without a reference", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.ConfirmPayment(3998, "EUR", "") },
			nil, CodeValidation, Invalid},
		// shipment
		{"ship when paid", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.Ship("DHL", "JD0001") },
			[]events.Payload{shipped}, "", 0},
		{"ship before payment", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.Ship("DHL", "JD0001") },
			nil, CodeNotPaid, RuleViolated},
		{"ship twice", []events.Payload{placed, paid, shipped}, func(s State) ([]events.Payload, error) { return s.Ship("DHL", "JD0002") },
			nil, CodeAlreadyShipped, RuleViolated},
		{"ship without a tracking number", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.Ship("DHL", " ") },
			nil, CodeValidation, Invalid},
		// delivery
		{"deliver when shipped", []events.Payload{placed, paid, shipped}, func(s State) ([]events.Payload, error) { return s.Deliver() },
			[]events.Payload{delivered}, "", 0},
		{"deliver before shipment", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.Deliver() },
			nil, CodeNotShipped, RuleViolated},
		// cancellation
		{"cancel an unpaid order: no refund", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.Cancel("changed my mind") },
			[]events.Payload{cancelled}, "", 0},
		{"cancel a paid order: refund what was paid", []events.Payload{placed, paid}, func(s State) ([]events.Payload, error) { return s.Cancel("out of stock") },
			[]events.Payload{events.OrderCancelled{Reason: "out of stock", RefundDue: 3998}}, "", 0},
		{"cancel after shipment", []events.Payload{placed, paid, shipped}, func(s State) ([]events.Payload, error) { return s.Cancel("late") },
			nil, CodeAlreadyShipped, RuleViolated},
		{"cancel without a reason", []events.Payload{placed}, func(s State) ([]events.Payload, error) { return s.Cancel("") },
			nil, CodeValidation, Invalid},
		// closed orders
		{"anything after delivery", []events.Payload{placed, paid, shipped, delivered}, func(s State) ([]events.Payload, error) { return s.Cancel("x") },
			nil, CodeOrderClosed, RuleViolated},
		{"anything after cancellation", []events.Payload{placed, cancelled}, func(s State) ([]events.Payload, error) { return s.ChangeShippingAddress(home) },
			nil, CodeOrderClosed, RuleViolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := given(t, tt.given...)
			got, err := tt.when(s)
			if tt.wantCode != "" {
				var de *Error
				if !errors.As(err, &de) || de.Code != tt.wantCode || de.Kind != tt.wantKind {
					t.Fatalf("error = %v, want code %s kind %d", err, tt.wantCode, tt.wantKind)
				}
				if got != nil {
					t.Errorf("events = %v alongside an error, want none", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("events = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func placedWith(lines int) events.OrderPlaced {
	p := placed
	p.Items = nil
	for i := range lines {
		p.Items = append(p.Items, events.LineItem{SKU: fmt.Sprintf("SKU-%03d", i), Name: "n", Quantity: 1, UnitPrice: 1})
	}
	return p
}

func TestPlace(t *testing.T) {
	ok := PlaceOrder{Customer: ada, ShippingAddress: home, Currency: "EUR", Items: []events.LineItem{book, pen}}
	got, err := Place(ok)
	if err != nil {
		t.Fatalf("Place() error = %v", err)
	}
	want := []events.Payload{events.OrderPlaced{Customer: ada, ShippingAddress: home, Currency: "EUR", Items: []events.LineItem{book, pen}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Place() = %#v, want %#v", got, want)
	}

	tests := []struct {
		name       string
		mutate     func(*PlaceOrder)
		wantCode   string
		wantFields []string
	}{
		{"no items", func(c *PlaceOrder) { c.Items = nil }, CodeValidation, []string{"items"}},
		{"101 lines", func(c *PlaceOrder) { c.Items = placedWith(101).Items }, CodeValidation, []string{"items"}},
		{"quantity 0 and 10001", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 0}, {SKU: "B", Name: "b", Quantity: 10_001}}
		}, CodeValidation, []string{"items[0].quantity", "items[1].quantity"}},
		{"negative price", func(c *PlaceOrder) { c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: -1}} }, CodeValidation, []string{"items[0].unit_price"}},
		{"repeated sku", func(c *PlaceOrder) { c.Items = []events.LineItem{book, book} }, CodeValidation, []string{"items[1].sku"}},
		{"sku with a slash", func(c *PlaceOrder) { c.Items = []events.LineItem{{SKU: "A/B", Name: "a", Quantity: 1}} }, CodeValidation, []string{"items[0].sku"}},
		{"bad currency", func(c *PlaceOrder) { c.Currency = "eur" }, CodeValidation, []string{"currency"}},
		{"bad email and missing customer id", func(c *PlaceOrder) { c.Customer = events.Customer{Name: "A", Email: "not-an-email"} }, CodeValidation, []string{"customer.id", "customer.email"}},
		{"bad country, missing city", func(c *PlaceOrder) { c.ShippingAddress.Country = "GBR"; c.ShippingAddress.City = "" }, CodeValidation, []string{"shipping_address.city", "shipping_address.country"}},
		{"overflowing total", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 10_000, UnitPrice: 1 << 60}}
		}, CodeTotalOverflow, []string{"items"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := ok
			cmd.Customer, cmd.ShippingAddress = ada, home
			tt.mutate(&cmd)
			got, err := Place(cmd)
			var de *Error
			if !errors.As(err, &de) || de.Code != tt.wantCode || de.Kind != Invalid {
				t.Fatalf("Place() error = %v, want code %s", err, tt.wantCode)
			}
			if got != nil {
				t.Errorf("Place() = %v alongside an error", got)
			}
			var fields []string
			for _, f := range de.Fields {
				fields = append(fields, f.Field)
			}
			for _, want := range tt.wantFields {
				if !strings.Contains(strings.Join(fields, ","), want) {
					t.Errorf("field errors = %v, want one for %s", fields, want)
				}
			}
		})
	}
}

func TestEvolveBuildsTheState(t *testing.T) {
	s := given(t, placed, events.OrderItemAdded{Item: pen}, events.OrderItemAdded{Item: book},
		events.OrderItemRemoved{SKU: "PN-7"}, events.ShippingAddressChanged{ShippingAddress: events.Address{Name: "B", Line1: "1", City: "Paris", PostalCode: "75001", Country: "FR"}},
		events.PaymentConfirmed{Amount: 7996, Currency: "EUR", Reference: "pay_9"}, shipped, delivered)
	if s.Version != 8 || s.Status != StatusDelivered {
		t.Fatalf("version, status = %d, %s; want 8, delivered", s.Version, s.Status)
	}
	if len(s.Items) != 1 || s.Items[0].Quantity != 4 || s.Total != 4*1999 {
		t.Errorf("items = %+v, total %d; want one line of 4 x 1999", s.Items, s.Total)
	}
	if s.ShippingAddress.City != "Paris" || s.PaidAmount != 7996 || s.PaymentReference != "pay_9" || s.TrackingNumber != "JD0001" || s.Carrier != "DHL" {
		t.Errorf("state = %+v", s)
	}
	if !s.PlacedAt.Equal(time.Unix(0, 0)) || !s.UpdatedAt.Equal(time.Unix(7, 0)) || s.ID != "o-1" {
		t.Errorf("id %q placed %v updated %v", s.ID, s.PlacedAt, s.UpdatedAt)
	}
	c := given(t, placed, paid, events.OrderCancelled{Reason: "r", RefundDue: 3998})
	if c.Status != StatusCancelled || c.RefundDue != 3998 || c.CancelReason != "r" {
		t.Errorf("cancelled state = %+v", c)
	}
}

func TestEvolveDoesNotShareItems(t *testing.T) {
	before := given(t, placed)
	after := Evolve(before, events.Envelope{Version: 2}, events.OrderItemAdded{Item: book})
	if before.Items[0].Quantity != 2 || after.Items[0].Quantity != 4 {
		t.Errorf("before %d, after %d; want 2 and 4 (states must not share lines)", before.Items[0].Quantity, after.Items[0].Quantity)
	}
}

func TestFoldEqualsStepwiseEvolve(t *testing.T) {
	past := []events.Payload{placed, events.OrderItemAdded{Item: pen}, events.PaymentConfirmed{Amount: 4248, Currency: "EUR", Reference: "x"}, shipped}
	var history []events.Envelope
	for i, p := range past {
		typ, sv, data, err := events.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, events.Envelope{OrderID: "o-1", Version: int64(i + 1), Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Unix(int64(i), 0).UTC()})
	}
	got, err := Fold(history)
	if err != nil {
		t.Fatal(err)
	}
	if want := given(t, past...); !reflect.DeepEqual(got, want) {
		t.Errorf("Fold() = %+v, want %+v", got, want)
	}
	if got.Total != 4248 {
		t.Errorf("total = %d, want 4248", got.Total)
	}
	history[1].Type = "OrderTeleported"
	if _, err := Fold(history); err == nil {
		t.Error("Fold() of an unknown event = nil error, want one")
	}
}

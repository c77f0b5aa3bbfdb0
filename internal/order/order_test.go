package order

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

var (
	adaCmd = Customer{ID: "cus_1042", Name: "Ada Lovelace", Email: "ada@example.com"}
	ada    = events.Customer{ID: "cus_1042", Name: events.Plain("Ada Lovelace"), Email: events.Plain("ada@example.com")}
	home   = events.Address{Name: "Ada Lovelace", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"}
	away   = events.Address{Name: "Ada", Line1: "1 Rue de Rivoli", Line2: "Apt 2", City: "Paris", PostalCode: "75001", Country: "FR"}
	book   = events.LineItem{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}
	pen    = events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 250}

	placed      = events.OrderPlaced{Customer: ada, ShippingAddress: events.Plain(home), Currency: "EUR", Items: []events.LineItem{book}} // total 3998
	penAdded    = events.OrderItemAdded{Item: pen}                                                                                        // total 4248
	paid        = events.PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay_1"}
	shipped     = events.OrderShipped{Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "JD0001"}}}
	delivered   = events.OrderDelivered{}
	erasedEvent = events.PersonalDataErased{ErasureID: "e-1", RequestedAt: time.Unix(100, 0).UTC()}
	cancelled   = events.OrderCancelled{Reason: events.Plain("changed my mind")}
)

// at is the envelope of the n-th event (1-based) of the test order; it occurred n-1 seconds after 0.
func at(n int) events.Envelope {
	return events.Envelope{OrderID: "o-1", Version: int64(n), OccurredAt: time.Unix(int64(n-1), 0).UTC()}
}

// given folds past payloads into a state, as the event store would replay them.
func given(past ...events.Payload) State {
	var s State
	for i, p := range past {
		s = Evolve(s, at(i+1), p)
	}
	return s
}

func withItems(n int) events.OrderPlaced {
	p := placed
	p.Items = nil
	for i := range n {
		p.Items = append(p.Items, events.LineItem{SKU: fmt.Sprintf("SKU-%03d", i), Name: "n", Quantity: 1, UnitPrice: 1})
	}
	return p
}

// A command is one call of a command method, named for the failure messages.
type command struct {
	name string
	run  func(State) ([]events.Payload, error)
}

func addItem(it events.LineItem) command {
	return command{fmt.Sprintf("AddItem(%s x%d at %d)", it.SKU, it.Quantity, it.UnitPrice), func(s State) ([]events.Payload, error) { return s.AddItem(it) }}
}
func removeItem(sku string) command {
	return command{fmt.Sprintf("RemoveItem(%q)", sku), func(s State) ([]events.Payload, error) { return s.RemoveItem(sku) }}
}
func changeAddress(a events.Address) command {
	return command{fmt.Sprintf("ChangeShippingAddress(%+v)", a), func(s State) ([]events.Payload, error) { return s.ChangeShippingAddress(a) }}
}
func confirmPayment(amount int64, currency, ref string) command {
	return command{fmt.Sprintf("ConfirmPayment(%d, %q, %q)", amount, currency, ref), func(s State) ([]events.Payload, error) { return s.ConfirmPayment(amount, currency, ref) }}
}
func ship(carrier, tracking string) command {
	return command{fmt.Sprintf("Ship(%q, %q)", carrier, tracking), func(s State) ([]events.Payload, error) { return s.Ship(carrier, tracking) }}
}
func deliver() command {
	return command{"Deliver()", func(s State) ([]events.Payload, error) { return s.Deliver() }}
}
func cancel(reason string) command {
	return command{fmt.Sprintf("Cancel(%.20q)", reason), func(s State) ([]events.Payload, error) { return s.Cancel(reason) }}
}

// everyCommand has one call of each command method with valid values.
var everyCommand = []command{addItem(pen), removeItem("BK-001"), changeAddress(away), confirmPayment(3998, "EUR", "pay_1"),
	ship("DHL", "JD0001"), deliver(), cancel("changed my mind")}

// kindOf pins the Kind each code comes with, as errors.go documents it.
var kindOf = map[string]Kind{
	CodeValidation: Invalid, CodeTotalOverflow: Invalid, CodeNotFound: NotFound,
	CodeItemsLocked: RuleViolated, CodeAddressLocked: RuleViolated, CodePaymentMismatch: RuleViolated,
	CodeAlreadyPaid: RuleViolated, CodeNotPaid: RuleViolated, CodeNotShipped: RuleViolated,
	CodeAlreadyShipped: RuleViolated, CodeOrderClosed: RuleViolated, CodeUnknownSKU: RuleViolated,
	CodeLastItem: RuleViolated, CodeTooManyItems: RuleViolated, CodeQuantityOverflow: RuleViolated,
	CodeUnitPriceMismatch: RuleViolated,
}

// refusal is an expected error: its code and, for Invalid ones, the exact fields named.
type refusal struct {
	code   string
	fields []string
}

func fails(code string, fields ...string) *refusal { return &refusal{code: code, fields: fields} }
func invalid(fields ...string) *refusal            { return fails(CodeValidation, fields...) }
func then(ps ...events.Payload) []events.Payload   { return ps }

// checkRefusal fails the test unless err is an *Error with the wanted code, kind and fields.
func checkRefusal(t *testing.T, call string, err error, want *refusal) {
	t.Helper()
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("%s error = %v, want *order.Error with code %s", call, err, want.code)
	}
	if de.Code != want.code || de.Kind != kindOf[want.code] || de.Message == "" {
		t.Errorf("%s error = %v (kind %d), want code %s kind %d and a message", call, err, de.Kind, want.code, kindOf[want.code])
	}
	var fields []string
	for _, f := range de.Fields {
		fields = append(fields, f.Field)
		if f.Message == "" {
			t.Errorf("%s: field error %s has no message", call, f.Field)
		}
	}
	slices.Sort(fields)
	wantFields := slices.Sorted(slices.Values(want.fields))
	if !slices.Equal(fields, wantFields) {
		t.Errorf("%s error fields = %v, want %v (%v)", call, fields, wantFields, err)
	}
}

func clone(s State) State {
	s.Items = slices.Clone(s.Items)
	return s
}

// decide runs a command given the past, checks the state was not touched and returns the decision.
func decide(t *testing.T, past []events.Payload, when command) ([]events.Payload, error) {
	t.Helper()
	s := given(past...)
	before := clone(s)
	got, err := when.run(s)
	if !reflect.DeepEqual(s, before) {
		t.Errorf("%s changed the state: %+v, was %+v", when.name, s, before)
	}
	if err != nil && got != nil {
		t.Errorf("%s = %v alongside error %v, want no events", when.name, got, err)
	}
	return got, err
}

func TestCommands(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name  string
		given []events.Payload
		when  command
		then  []events.Payload
		fails *refusal
	}{
		// AddItem
		{"add a new sku", then(placed), addItem(pen), then(penAdded), nil},
		{"add a free item", then(placed), addItem(events.LineItem{SKU: "GIFT", Name: "Gift", Quantity: 1, UnitPrice: 0}),
			then(events.OrderItemAdded{Item: events.LineItem{SKU: "GIFT", Name: "Gift", Quantity: 1, UnitPrice: 0}}), nil},
		{"add an existing sku adds to its quantity", then(placed), addItem(book), then(events.OrderItemAdded{Item: book}), nil},
		{"add an existing sku up to quantity 10,000", then(placed), addItem(events.LineItem{SKU: "BK-001", Name: "x", Quantity: MaxQuantity - 2, UnitPrice: 1999}),
			then(events.OrderItemAdded{Item: events.LineItem{SKU: "BK-001", Name: "x", Quantity: MaxQuantity - 2, UnitPrice: 1999}}), nil},
		{"add an existing sku beyond quantity 10,000", then(placed), addItem(events.LineItem{SKU: "BK-001", Name: "x", Quantity: MaxQuantity - 1, UnitPrice: 1999}),
			nil, fails(CodeQuantityOverflow)},
		{"add an existing sku at another unit price", then(placed), addItem(events.LineItem{SKU: "BK-001", Name: "x", Quantity: 1, UnitPrice: 1}),
			nil, fails(CodeUnitPriceMismatch)},
		{"add a removed sku at another unit price", then(placed, penAdded, events.OrderItemRemoved{SKU: "PN-7"}), addItem(events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 300}),
			then(events.OrderItemAdded{Item: events.LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 300}}), nil},
		{"add a 100th line", then(withItems(99)), addItem(pen), then(penAdded), nil},
		{"add a 101st line", then(withItems(100)), addItem(pen), nil, fails(CodeTooManyItems)},
		{"add to a line of a 100-line order", then(withItems(100)), addItem(events.LineItem{SKU: "SKU-007", Name: "n", Quantity: 5, UnitPrice: 1}),
			then(events.OrderItemAdded{Item: events.LineItem{SKU: "SKU-007", Name: "n", Quantity: 5, UnitPrice: 1}}), nil},
		{"add a line whose total overflows", then(placed), addItem(events.LineItem{SKU: "BIG", Name: "x", Quantity: 10_000, UnitPrice: 1 << 62}),
			nil, invalid("unit_price")},
		{"add a line that overflows the order total", then(events.OrderPlaced{Customer: ada, ShippingAddress: events.Plain(home), Currency: "EUR",
			Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: math.MaxInt64 - 10}}}),
			addItem(events.LineItem{SKU: "B", Name: "b", Quantity: 1, UnitPrice: 11}), nil, fails(CodeTotalOverflow, "quantity")},
		{"add an invalid item", then(placed), addItem(events.LineItem{SKU: "", Name: " ", Quantity: 0, UnitPrice: -1}),
			nil, invalid("sku", "name", "quantity", "unit_price")},
		{"add too much of an item", then(placed), addItem(events.LineItem{SKU: "A/B", Name: long(201), Quantity: MaxQuantity + 1, UnitPrice: 1}),
			nil, invalid("sku", "name", "quantity")},
		{"add after payment", then(placed, paid), addItem(pen), nil, fails(CodeItemsLocked)},
		{"add after shipment", then(placed, paid, shipped), addItem(pen), nil, fails(CodeItemsLocked)},
		{"add an invalid item after payment: values first", then(placed, paid), addItem(events.LineItem{SKU: "A", Name: "a"}), nil, invalid("quantity")},

		// RemoveItem
		{"remove a line", then(placed, penAdded), removeItem("PN-7"), then(events.OrderItemRemoved{SKU: "PN-7"}), nil},
		{"remove the last line", then(placed), removeItem("BK-001"), nil, fails(CodeLastItem)},
		{"remove the last line left after a removal", then(placed, penAdded, events.OrderItemRemoved{SKU: "BK-001"}), removeItem("PN-7"), nil, fails(CodeLastItem)},
		{"remove an unknown sku", then(placed, penAdded), removeItem("NOPE"), nil, fails(CodeUnknownSKU)},
		{"remove a removed sku", then(placed, penAdded, events.OrderItemRemoved{SKU: "PN-7"}), removeItem("PN-7"), nil, fails(CodeUnknownSKU)},
		{"remove after payment", then(placed, penAdded, events.PaymentConfirmed{Amount: 4248, Currency: "EUR", Reference: "r"}), removeItem("PN-7"),
			nil, fails(CodeItemsLocked)},
		{"remove an unknown sku after payment", then(placed, paid), removeItem("NOPE"), nil, fails(CodeItemsLocked)},

		// ChangeShippingAddress
		{"change the address when placed", then(placed), changeAddress(away), then(events.ShippingAddressChanged{ShippingAddress: events.Plain(away)}), nil},
		{"change the address when paid", then(placed, paid), changeAddress(away), then(events.ShippingAddressChanged{ShippingAddress: events.Plain(away)}), nil},
		{"change the address after shipment", then(placed, paid, shipped), changeAddress(away), nil, fails(CodeAddressLocked)},
		{"change to an empty address", then(placed), changeAddress(events.Address{}),
			nil, invalid("shipping_address.name", "shipping_address.line1", "shipping_address.city", "shipping_address.postal_code", "shipping_address.country")},
		{"change to a lower-case country", then(placed), changeAddress(events.Address{Name: "A", Line1: "1", City: "C", PostalCode: "1", Country: "fr"}),
			nil, invalid("shipping_address.country")},
		{"change to overlong lines", then(placed), changeAddress(events.Address{Name: "A", Line1: long(201), Line2: long(201), City: "C", PostalCode: long(21), Country: "FR"}),
			nil, invalid("shipping_address.line1", "shipping_address.line2", "shipping_address.postal_code")},

		// ConfirmPayment
		{"pay the total", then(placed), confirmPayment(3998, "EUR", "pay_1"), then(paid), nil},
		{"pay the total after items changed", then(placed, penAdded, events.OrderItemAdded{Item: book}, events.OrderItemRemoved{SKU: "PN-7"}),
			confirmPayment(7996, "EUR", "pay_1"), then(events.PaymentConfirmed{Amount: 7996, Currency: "EUR", Reference: "pay_1"}), nil},
		{"pay a free order", then(events.OrderPlaced{Customer: ada, ShippingAddress: events.Plain(home), Currency: "JPY", Items: []events.LineItem{{SKU: "S", Name: "s", Quantity: 3, UnitPrice: 0}}}),
			confirmPayment(0, "JPY", "promo"), then(events.PaymentConfirmed{Amount: 0, Currency: "JPY", Reference: "promo"}), nil},
		{"pay less", then(placed), confirmPayment(3997, "EUR", "pay_1"), nil, fails(CodePaymentMismatch)},
		{"pay more", then(placed), confirmPayment(3999, "EUR", "pay_1"), nil, fails(CodePaymentMismatch)},
		{"pay in another currency", then(placed), confirmPayment(3998, "USD", "pay_1"), nil, fails(CodePaymentMismatch)},
		{"pay the total before an item was added", then(placed, penAdded), confirmPayment(3998, "EUR", "pay_1"), nil, fails(CodePaymentMismatch)},
		{"pay twice", then(placed, paid), confirmPayment(3998, "EUR", "pay_2"), nil, fails(CodeAlreadyPaid)},
		{"pay after shipment", then(placed, paid, shipped), confirmPayment(3998, "EUR", "pay_2"), nil, fails(CodeAlreadyPaid)},
		{"pay without a reference", then(placed), confirmPayment(3998, "EUR", " "), nil, invalid("reference")},
		{"pay a negative amount in a bad currency", then(placed), confirmPayment(-1, "Eur", "pay_1"), nil, invalid("amount", "currency")},

		// Ship
		{"ship when paid", then(placed, paid), ship("DHL", "JD0001"), then(shipped), nil},
		{"ship before payment", then(placed), ship("DHL", "JD0001"), nil, fails(CodeNotPaid)},
		{"ship twice", then(placed, paid, shipped), ship("DHL", "JD0002"), nil, fails(CodeAlreadyShipped)},
		{"ship without carrier and tracking number", then(placed, paid), ship("", " "), nil, invalid("carrier", "tracking_number")},
		{"ship with an overlong tracking number", then(placed, paid), ship("DHL", long(201)), nil, invalid("tracking_number")},

		// Deliver
		{"deliver when shipped", then(placed, paid, shipped), deliver(), then(delivered), nil},
		{"deliver before payment", then(placed), deliver(), nil, fails(CodeNotShipped)},
		{"deliver before shipment", then(placed, paid), deliver(), nil, fails(CodeNotShipped)},

		// Cancel
		{"cancel an unpaid order: nothing to refund", then(placed), cancel("changed my mind"), then(cancelled), nil},
		{"cancel a paid order: refund what was paid", then(placed, paid), cancel("out of stock"),
			then(events.OrderCancelled{Reason: events.Plain("out of stock"), RefundDue: 3998}), nil},
		{"cancel with a 500-character reason", then(placed), cancel(long(500)), then(events.OrderCancelled{Reason: events.Plain(long(500))}), nil},
		{"cancel after shipment", then(placed, paid, shipped), cancel("late"), nil, fails(CodeAlreadyShipped)},
		{"cancel without a reason", then(placed), cancel(""), nil, invalid("reason")},
		{"cancel with a 501-character reason", then(placed), cancel(long(501)), nil, invalid("reason")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decide(t, tt.given, tt.when)
			if tt.fails != nil {
				checkRefusal(t, tt.when.name, err, tt.fails)
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.then) {
				t.Errorf("%s = %#v, %v; want %#v", tt.when.name, got, err, tt.then)
			}
		})
	}
}

func TestCommandsOnAMissingOrder(t *testing.T) {
	for _, when := range everyCommand {
		_, err := decide(t, nil, when)
		checkRefusal(t, when.name, err, fails(CodeNotFound))
	}
	// Even with invalid values: the order's existence comes first.
	_, err := decide(t, nil, cancel(""))
	checkRefusal(t, "Cancel(\"\")", err, fails(CodeNotFound))
}

func TestNothingHappensToAClosedOrder(t *testing.T) {
	closed := map[string][]events.Payload{
		"delivered":         {placed, paid, shipped, delivered},
		"cancelled":         {placed, cancelled},
		"cancelled if paid": {placed, paid, events.OrderCancelled{Reason: events.Plain("r"), RefundDue: 3998}},
	}
	for name, past := range closed {
		for _, when := range everyCommand {
			_, err := decide(t, past, when)
			checkRefusal(t, name+": "+when.name, err, fails(CodeOrderClosed))
		}
		_, err := decide(t, past, ship("", "")) // closed comes before invalid values
		checkRefusal(t, name+`: Ship("", "")`, err, fails(CodeOrderClosed))
	}
}

func TestPlace(t *testing.T) {
	valid := func() PlaceOrder {
		return PlaceOrder{Customer: adaCmd, ShippingAddress: home, Currency: "EUR", Items: []events.LineItem{book, pen}}
	}
	cmd := valid()
	got, err := Place(cmd)
	want := then(events.OrderPlaced{Customer: ada, ShippingAddress: events.Plain(home), Currency: "EUR", Items: []events.LineItem{book, pen}})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Place(%+v) = %#v, %v; want %#v", cmd, got, err, want)
	}
	cmd.Items[0].Quantity = 99 // the event must not share the command's slice
	if q := got[0].(events.OrderPlaced).Items[0].Quantity; q != book.Quantity {
		t.Errorf("Place() event quantity = %d after the command changed, want %d", q, book.Quantity)
	}

	long := func(n int) string { return strings.Repeat("é", n) } // counted in characters, not bytes
	accepted := []struct {
		name   string
		mutate func(*PlaceOrder)
	}{
		{"100 lines", func(c *PlaceOrder) { c.Items = withItems(100).Items }},
		{"quantity 10,000 at price 0", func(c *PlaceOrder) { c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: MaxQuantity}} }},
		{"longest values", func(c *PlaceOrder) {
			c.Customer = Customer{ID: long(200), Name: long(200), Email: "ada@example.com"}
			c.ShippingAddress = events.Address{Name: long(200), Line1: long(200), Line2: long(200), City: long(200), PostalCode: long(20), Country: "DE"}
			c.Items = []events.LineItem{{SKU: strings.Repeat("S", MaxSKULen), Name: long(200), Quantity: 1, UnitPrice: 1}}
		}},
		{"sku with spaces, dots and unicode inside", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "Bücher v1.2 ..", Name: "b", Quantity: 1}}
		}},
		{"largest total", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: math.MaxInt64 - 1}, {SKU: "B", Name: "b", Quantity: 1, UnitPrice: 1}}
		}},
	}
	for _, tt := range accepted {
		cmd := valid()
		tt.mutate(&cmd)
		if _, err := Place(cmd); err != nil {
			t.Errorf("Place(%s) error = %v, want none", tt.name, err)
		}
	}

	refused := []struct {
		name   string
		mutate func(*PlaceOrder)
		fails  *refusal
	}{
		{"no items", func(c *PlaceOrder) { c.Items = nil }, invalid("items")},
		{"101 lines", func(c *PlaceOrder) { c.Items = withItems(101).Items }, invalid("items")},
		{"quantity 0 and 10,001", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 0}, {SKU: "B", Name: "b", Quantity: 10_001}}
		}, invalid("items[0].quantity", "items[1].quantity")},
		{"negative price", func(c *PlaceOrder) { c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: -1}} }, invalid("items[0].unit_price")},
		{"repeated sku", func(c *PlaceOrder) { c.Items = []events.LineItem{book, pen, book} }, invalid("items[2].sku")},
		{"missing sku and name", func(c *PlaceOrder) { c.Items = []events.LineItem{{Quantity: 1}} }, invalid("items[0].sku", "items[0].name")},
		{"sku of 65 characters", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: strings.Repeat("S", 65), Name: "a", Quantity: 1}}
		}, invalid("items[0].sku")},
		{"skus that do not fit a URL path", func(c *PlaceOrder) {
			c.Items = nil
			for _, sku := range []string{"A/B", "A?B", "A#B", "100%", ".", "..", " A", "A\t", "A\nB", "A\x00"} {
				c.Items = append(c.Items, events.LineItem{SKU: sku, Name: "a", Quantity: 1})
			}
		}, invalid("items[0].sku", "items[1].sku", "items[2].sku", "items[3].sku", "items[4].sku", "items[5].sku", "items[6].sku", "items[7].sku", "items[8].sku", "items[9].sku")},
		{"item name of 201 characters", func(c *PlaceOrder) { c.Items = []events.LineItem{{SKU: "A", Name: long(201), Quantity: 1}} }, invalid("items[0].name")},
		{"line total overflows", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 10_000, UnitPrice: 1 << 60}}
		}, invalid("items[0].unit_price")},
		{"order total overflows", func(c *PlaceOrder) {
			c.Items = []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: math.MaxInt64}, {SKU: "B", Name: "b", Quantity: 1, UnitPrice: 1}}
		}, fails(CodeTotalOverflow, "items")},
		{"currency in lower case", func(c *PlaceOrder) { c.Currency = "eur" }, invalid("currency")},
		{"currency of 4 letters", func(c *PlaceOrder) { c.Currency = "EURO" }, invalid("currency")},
		{"no currency", func(c *PlaceOrder) { c.Currency = "" }, invalid("currency")},
		{"no customer", func(c *PlaceOrder) { c.Customer = Customer{} }, invalid("customer.id", "customer.name", "customer.email")},
		{"email without a domain", func(c *PlaceOrder) { c.Customer.Email = "not-an-email" }, invalid("customer.email")},
		{"email with a display name", func(c *PlaceOrder) { c.Customer.Email = "Ada <ada@example.com>" }, invalid("customer.email")},
		{"customer name of 201 characters", func(c *PlaceOrder) { c.Customer.Name = long(201) }, invalid("customer.name")},
		{"customer name not UTF-8", func(c *PlaceOrder) { c.Customer.Name = "Ada \xff" }, invalid("customer.name")},
		{"no address", func(c *PlaceOrder) { c.ShippingAddress = events.Address{} },
			invalid("shipping_address.name", "shipping_address.line1", "shipping_address.city", "shipping_address.postal_code", "shipping_address.country")},
		{"country of 3 letters", func(c *PlaceOrder) { c.ShippingAddress.Country = "GBR" }, invalid("shipping_address.country")},
		{"line2 of 201 characters", func(c *PlaceOrder) { c.ShippingAddress.Line2 = long(201) }, invalid("shipping_address.line2")},
		{"everything wrong at once", func(c *PlaceOrder) { *c = PlaceOrder{Customer: adaCmd, ShippingAddress: home, Currency: "€"} }, invalid("currency", "items")},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			cmd := valid()
			tt.mutate(&cmd)
			got, err := Place(cmd)
			if got != nil {
				t.Errorf("Place() = %v alongside an error, want no events", got)
			}
			checkRefusal(t, "Place()", err, tt.fails)
		})
	}
}

func TestEvolve(t *testing.T) {
	placedState := func(s *State) {
		*s = State{ID: "o-1", Status: StatusPlaced, Customer: ada, ShippingAddress: events.Plain(home), Currency: "EUR",
			Items: []events.LineItem{book}, Total: 3998, PlacedAt: time.Unix(0, 0).UTC()}
	}
	tests := []struct {
		name   string
		given  []events.Payload
		event  events.Payload
		change func(*State) // what the event changes besides Version and UpdatedAt
	}{
		{"OrderPlaced", nil, placed, placedState},
		{"OrderItemAdded of a new sku", then(placed), penAdded, func(s *State) {
			s.Items = []events.LineItem{book, pen}
			s.Total = 4248
		}},
		{"OrderItemAdded of an existing sku", then(placed, penAdded), events.OrderItemAdded{Item: events.LineItem{SKU: "BK-001", Name: "other name", Quantity: 3, UnitPrice: 1999}}, func(s *State) {
			s.Items = []events.LineItem{{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 5, UnitPrice: 1999}, pen}
			s.Total = 5*1999 + 250
		}},
		{"OrderItemRemoved", then(placed, penAdded), events.OrderItemRemoved{SKU: "BK-001"}, func(s *State) {
			s.Items = []events.LineItem{pen}
			s.Total = 250
		}},
		{"OrderItemRemoved of an unknown sku changes nothing", then(placed), events.OrderItemRemoved{SKU: "NOPE"}, func(*State) {}},
		{"ShippingAddressChanged", then(placed), events.ShippingAddressChanged{ShippingAddress: events.Plain(away)}, func(s *State) { s.ShippingAddress = events.Plain(away) }},
		{"PaymentConfirmed", then(placed), paid, func(s *State) {
			s.Status, s.PaidAmount, s.PaymentReference = StatusPaid, 3998, "pay_1"
		}},
		{"OrderShipped", then(placed, paid), shipped, func(s *State) {
			s.Status, s.Carrier, s.Parcels = StatusShipped, "DHL", []events.Parcel{{TrackingNumber: "JD0001"}}
		}},
		{"OrderDelivered", then(placed, paid, shipped), delivered, func(s *State) { s.Status = StatusDelivered }},
		{"OrderCancelled unpaid", then(placed), cancelled, func(s *State) {
			s.Status, s.CancelReason, s.RefundDue = StatusCancelled, events.Plain("changed my mind"), 0
		}},
		{"OrderCancelled paid", then(placed, paid), events.OrderCancelled{Reason: events.Plain("r"), RefundDue: 3998}, func(s *State) {
			s.Status, s.CancelReason, s.RefundDue = StatusCancelled, events.Plain("r"), 3998
		}},
		{"PersonalDataErased", then(placed, cancelled), erasedEvent, func(s *State) {
			s.Customer = events.Customer{ID: "cus_1042"}
			s.ShippingAddress, s.CancelReason, s.Erased = events.Personal[events.Address]{}, events.Personal[string]{}, true
		}},
		{"an unknown payload only counts", then(placed), nil, func(*State) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := given(tt.given...)
			kept := clone(before)
			n := len(tt.given) + 1
			want := clone(before)
			tt.change(&want)
			want.Version, want.UpdatedAt = int64(n), time.Unix(int64(n-1), 0).UTC()

			got := Evolve(before, at(n), tt.event)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Evolve(%T) =\n%+v\nwant\n%+v", tt.event, got, want)
			}
			if !reflect.DeepEqual(before, kept) {
				t.Errorf("Evolve(%T) changed the state it was given: %+v, was %+v", tt.event, before, kept)
			}
		})
	}
}

func TestTextMustNotHoldControlCharacters(t *testing.T) {
	cmd := PlaceOrder{Customer: Customer{ID: "c", Name: "Ada\x00Lovelace", Email: "ada@example.com"},
		ShippingAddress: events.Address{Name: "Ada", Line1: "1\x07", City: "London", PostalCode: "N1", Country: "GB"},
		Currency:        "EUR", Items: []events.LineItem{{SKU: "A", Name: "line one\nline two\ttab", Quantity: 1, UnitPrice: 1}}}
	_, err := Place(cmd)
	var de *Error
	if !errors.As(err, &de) || len(de.Fields) != 2 || de.Fields[0].Field != "customer.name" || de.Fields[1].Field != "shipping_address.line1" {
		t.Fatalf("Place() error = %v, want customer.name and shipping_address.line1 refused (tab and newline allowed)", err)
	}
}

func TestEvolveDoesNotShareItems(t *testing.T) {
	p := events.OrderPlaced{Customer: ada, ShippingAddress: events.Plain(home), Currency: "EUR", Items: []events.LineItem{book, pen}}
	s := Evolve(State{}, at(1), p)
	p.Items[0].Quantity = 99
	next := Evolve(s, at(2), events.OrderItemAdded{Item: pen})
	next.Items[0].Quantity = 77
	if s.Items[0].Quantity != book.Quantity || s.Items[1].Quantity != pen.Quantity {
		t.Errorf("state items = %+v; want them untouched by changes to the event and to the next state", s.Items)
	}
}

// envelopes encodes payloads as the event store would give them back (personal data in plain text,
// at schema version 1, where the payload holds it plain).
func envelopes(t *testing.T, payloads []events.Payload) []events.Envelope {
	t.Helper()
	history := make([]events.Envelope, len(payloads))
	for i, p := range payloads {
		max := 0
		if events.SealsAt(p, 0) {
			max = 1
		}
		typ, sv, data, err := events.EncodeAt(p, max)
		if err != nil {
			t.Fatalf("Encode(%#v) error = %v", p, err)
		}
		history[i] = at(i + 1)
		history[i].Type, history[i].SchemaVersion, history[i].Data = typ, sv, data
	}
	return history
}

func TestFold(t *testing.T) {
	past := []events.Payload{placed, penAdded, events.OrderItemAdded{Item: book}, events.OrderItemRemoved{SKU: "PN-7"},
		events.ShippingAddressChanged{ShippingAddress: events.Plain(away)}, events.PaymentConfirmed{Amount: 7996, Currency: "EUR", Reference: "x"}, shipped, delivered}
	history := envelopes(t, past)
	got, err := Fold(history)
	if err != nil {
		t.Fatalf("Fold() error = %v", err)
	}
	var stepwise State
	for i, p := range past {
		stepwise = Evolve(stepwise, at(i+1), p)
	}
	if !reflect.DeepEqual(got, stepwise) {
		t.Errorf("Fold() =\n%+v\nwant (Evolve step by step)\n%+v", got, stepwise)
	}
	if got.Total != 7996 || got.Version != 8 || got.Status != StatusDelivered {
		t.Errorf("Fold() total, version, status = %d, %d, %s; want 7996, 8, delivered", got.Total, got.Version, got.Status)
	}

	if s, err := Fold(nil); err != nil || !reflect.DeepEqual(s, State{}) || s.Exists() {
		t.Errorf("Fold(nil) = %+v, %v; want the zero State", s, err)
	}

	unknown := slices.Clone(history)
	unknown[2].Type = "OrderTeleported"
	var ue *events.UnknownEventError
	if s, err := Fold(unknown); !errors.As(err, &ue) || !reflect.DeepEqual(s, State{}) {
		t.Errorf("Fold(unknown type) = %+v, %v; want the zero State and *events.UnknownEventError", s, err)
	}
	corrupt := slices.Clone(history)
	corrupt[1].Data = []byte(`{"item":null}`)
	if _, err := Fold(corrupt); !errors.Is(err, events.ErrMalformedPayload) {
		t.Errorf("Fold(corrupt data) error = %v, want events.ErrMalformedPayload", err)
	}
}

// TestRandomCommandsKeepTheInvariants runs random commands on random orders, records what they
// decide, and checks after every step that the order still keeps its invariants and that the
// recorded events, encoded and folded back, give the same state.
func TestRandomCommandsKeepTheInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	skus := []string{"A", "B", "C", "D"}
	prices := map[string]int64{"A": 0, "B": 1, "C": 999, "D": math.MaxInt64 / MaxQuantity}
	item := func() events.LineItem {
		sku := skus[rng.IntN(len(skus))]
		return events.LineItem{SKU: sku, Name: sku, Quantity: []int64{0, 1, 7, 5000, MaxQuantity}[rng.IntN(5)], UnitPrice: prices[sku] + int64(rng.IntN(2))}
	}
	accepted := map[string]int{}
	for range 300 {
		first, err := Place(PlaceOrder{Customer: adaCmd, ShippingAddress: home, Currency: "EUR", Items: []events.LineItem{item()}})
		if err != nil {
			continue
		}
		past := first
		s := given(past...)
		for range 25 {
			var when command
			switch rng.IntN(8) {
			case 0, 1:
				when = addItem(item())
			case 2:
				when = removeItem(skus[rng.IntN(len(skus))])
			case 3:
				when = changeAddress(away)
			case 4:
				amount := s.Total
				if rng.IntN(4) == 0 {
					amount++
				}
				when = confirmPayment(amount, "EUR", "r")
			case 5:
				when = ship("DHL", "1")
			case 6:
				when = deliver()
			case 7:
				if rng.IntN(3) == 0 {
					when = cancel("r")
				} else {
					when = ship("UPS", "2")
				}
			}
			before := s
			decided, err := when.run(s)
			if err != nil {
				var de *Error
				if !errors.As(err, &de) || kindOf[de.Code] != de.Kind || de.Kind == NotFound {
					t.Fatalf("%s error = %v; want an *Error with a known code and kind", when.name, err)
				}
				continue
			}
			accepted[when.name[:strings.IndexByte(when.name, '(')]]++
			for _, p := range decided {
				past = append(past, p)
				s = Evolve(s, at(len(past)), p)
			}
			checkInvariants(t, when.name, before, s)
		}
		if folded, err := Fold(envelopes(t, past)); err != nil || !reflect.DeepEqual(folded, s) {
			t.Fatalf("Fold(recorded events) = %+v, %v; want %+v", folded, err, s)
		}
	}
	for _, name := range []string{"AddItem", "RemoveItem", "ChangeShippingAddress", "ConfirmPayment", "Ship", "Deliver", "Cancel"} {
		if accepted[name] == 0 {
			t.Errorf("no %s was ever accepted: the walk does not cover it", name)
		}
	}
}

func checkInvariants(t *testing.T, after string, before, s State) {
	t.Helper()
	if n := len(s.Items); n < 1 || n > MaxLines {
		t.Fatalf("after %s: %d lines", after, n)
	}
	var sum int64
	seen := map[string]bool{}
	for _, it := range s.Items {
		if seen[it.SKU] || it.Quantity < 1 || it.Quantity > MaxQuantity || it.UnitPrice < 0 {
			t.Fatalf("after %s: bad line %+v in %+v", after, it, s.Items)
		}
		seen[it.SKU] = true
		if it.UnitPrice > 0 && it.Quantity > (math.MaxInt64-sum)/it.UnitPrice {
			t.Fatalf("after %s: total overflows: %+v", after, s.Items)
		}
		sum += it.Quantity * it.UnitPrice
	}
	if s.Total != sum {
		t.Fatalf("after %s: total %d, lines sum to %d", after, s.Total, sum)
	}
	allowed := map[Status][]Status{
		StatusPlaced:  {StatusPlaced, StatusPaid, StatusCancelled},
		StatusPaid:    {StatusPaid, StatusShipped, StatusCancelled},
		StatusShipped: {StatusShipped, StatusDelivered},
	}
	if !slices.Contains(allowed[before.Status], s.Status) {
		t.Fatalf("after %s: status went from %s to %s", after, before.Status, s.Status)
	}
	if s.Status != StatusPlaced && !slices.Equal(s.Items, before.Items) {
		t.Fatalf("after %s: items changed in status %s", after, s.Status)
	}
	if s.Status == StatusPaid && before.Status == StatusPlaced && s.PaidAmount != s.Total {
		t.Fatalf("after %s: paid %d of a total of %d", after, s.PaidAmount, s.Total)
	}
	if s.Status == StatusCancelled && s.RefundDue != before.PaidAmount {
		t.Fatalf("after %s: refund due %d, paid %d", after, s.RefundDue, before.PaidAmount)
	}
}

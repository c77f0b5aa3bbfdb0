package events

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// samples has one payload of every event type; the golden files pin their wire format.
var samples = []Payload{
	OrderPlaced{
		Customer:        Customer{ID: "cus_1042", Name: "Ada Lovelace", Email: "ada@example.com"},
		ShippingAddress: Address{Name: "Ada Lovelace", Line1: "12 Analytical St", City: "London", PostalCode: "NW1 6XE", Country: "GB"},
		Currency:        "EUR",
		Items:           []LineItem{{SKU: "BK-001", Name: "Notes on the Engine", Quantity: 2, UnitPrice: 1999}},
	},
	OrderItemAdded{Item: LineItem{SKU: "PN-7", Name: "Pen", Quantity: 1, UnitPrice: 250}},
	OrderItemRemoved{SKU: "PN-7"},
	ShippingAddressChanged{ShippingAddress: Address{Name: "Ada", Line1: "1 Rue", Line2: "Apt 2", City: "Paris", PostalCode: "75001", Country: "FR"}},
	PaymentConfirmed{Amount: 3998, Currency: "EUR", Reference: "pay_123"},
	OrderShipped{Carrier: "DHL", TrackingNumber: "JD014600006281230707"},
	OrderDelivered{},
	OrderCancelled{Reason: "customer asked", RefundDue: 3998},
}

func TestGoldenEnvelopes(t *testing.T) {
	for i, p := range samples {
		t.Run(p.EventType(), func(t *testing.T) {
			typ, sv, data, err := Encode(p)
			if err != nil {
				t.Fatal(err)
			}
			env := Envelope{
				Position: int64(100 + i), EventID: uuid.MustParse("01936f3e-8c1a-7cc4-9e0a-6f1d2b3c4d5e"),
				OrderID: "01936f3e-0000-7000-8000-000000000001", Version: int64(i + 1), Type: typ, SchemaVersion: sv,
				OccurredAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), RecordedAt: time.Date(2026, 11, 22, 10, 0, 0, 1000, time.UTC),
				Data:     data,
				Metadata: Metadata{CorrelationID: "corr-1", CausationID: "req-1", Actor: "ada"},
			}
			got, err := json.MarshalIndent(env, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", p.EventType()+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/events -update to create it)", err)
			}
			if string(want) != string(got)+"\n" {
				t.Errorf("wire format of %s changed:\ngot:\n%s\nwant:\n%s", p.EventType(), got, want)
			}
			// And the golden file decodes back to the same payload.
			var back Envelope
			if err := json.Unmarshal(want, &back); err != nil {
				t.Fatal(err)
			}
			dp, err := DecodeEnvelope(back)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(dp, p) {
				t.Errorf("DecodeEnvelope(golden) = %#v, want %#v", dp, p)
			}
		})
	}
}

func TestDecodeRefusesWhatItDoesNotKnow(t *testing.T) {
	var unknown *UnknownEventError
	if _, err := Decode("OrderTeleported", 1, json.RawMessage(`{}`)); !errors.As(err, &unknown) || unknown.Type != "OrderTeleported" {
		t.Errorf("Decode(unknown type) error = %v, want *UnknownEventError", err)
	}
	if _, err := Decode(TypeOrderShipped, 2, json.RawMessage(`{}`)); !errors.As(err, &unknown) || unknown.SchemaVersion != 2 {
		t.Errorf("Decode(unknown schema version) error = %v, want *UnknownEventError", err)
	}
	if _, err := Decode(TypeOrderShipped, 1, json.RawMessage(`{"carrier":"DHL","tracking":"x"}`)); !errors.Is(err, ErrMalformedPayload) {
		t.Errorf("Decode(unknown field) error = %v, want ErrMalformedPayload", err)
	}
	if _, err := Decode(TypePaymentConfirmed, 1, json.RawMessage(`{"amount":"12"}`)); !errors.Is(err, ErrMalformedPayload) {
		t.Errorf("Decode(wrong type) error = %v, want ErrMalformedPayload", err)
	}
	if _, err := Decode(TypeOrderPlaced, 1, json.RawMessage(`{"customer":`)); !errors.Is(err, ErrMalformedPayload) {
		t.Errorf("Decode(truncated) error = %v, want ErrMalformedPayload", err)
	}
}

func TestEncodeRefusesNil(t *testing.T) {
	if _, _, _, err := Encode(nil); err == nil {
		t.Error("Encode(nil) error = nil, want one")
	}
}

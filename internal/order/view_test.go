package order

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/orders-oss/orders/internal/pii/piitest"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

func TestFromViewInvertsView(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	states := []State{
		{ID: "o-1", Version: 1, Status: StatusPlaced, Customer: events.Customer{ID: "c", Name: events.Plain("Ada"), Email: events.Plain("a@x.io")},
			ShippingAddress: events.Plain(events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"}),
			Currency:        "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 2, UnitPrice: 5}}, Total: 10, PlacedAt: at, UpdatedAt: at},
		{ID: "o-2", Version: 4, Status: StatusShipped, Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 7}},
			Total: 7, PaidAmount: 7, PaymentReference: "p", Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T1"}}, PlacedAt: at, UpdatedAt: at.Add(time.Hour)},
		{ID: "o-3", Version: 3, Status: StatusCancelled, Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 7}},
			Total: 7, PaidAmount: 7, PaymentReference: "p", CancelReason: events.Plain("late"), RefundDue: 7, PlacedAt: at, UpdatedAt: at},
		{ID: "o-4", Version: 5, Status: StatusCancelled, Customer: events.Customer{ID: "c"}, Currency: "EUR", Erased: true,
			Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 7}}, Total: 7, PlacedAt: at, UpdatedAt: at},
	}
	for _, s := range states {
		v, err := s.View(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := FromView(v); !reflect.DeepEqual(got, s) {
			t.Errorf("FromView(View(%s)) = %+v, want %+v", s.ID, got, s)
		}
	}
}

// A state folded from sealed events shows its personal data opened; once the key is gone, or once the
// order's personal data was erased, it shows null and says personal_data "erased".
func TestViewOpensAndErases(t *testing.T) {
	keys := piitest.New()
	key, err := keys.Key(context.Background(), "cus_1042")
	if err != nil {
		t.Fatal(err)
	}
	seal := func(p events.Payload) events.Payload {
		sealed, err := events.SealAt(p, 0, "o-1", key)
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	s := given(seal(placed), seal(cancelled))
	if s.HasPlain() || len(s.KeyIDs()) != 1 || s.KeyIDs()[0] != key.KeyID() {
		t.Fatalf("state of sealed events: HasPlain %v, KeyIDs %v", s.HasPlain(), s.KeyIDs())
	}
	if b, _ := EncodeState(s); strings.Contains(string(b), "Ada") || strings.Contains(string(b), "changed my mind") {
		t.Errorf("the state's JSON (a snapshot) holds plain text: %s", b)
	}
	v, err := s.View(keys)
	if err != nil {
		t.Fatal(err)
	}
	plainView, _ := given(placed, cancelled).View(nil)
	if !reflect.DeepEqual(v, plainView) || *v.Customer.Name != "Ada Lovelace" || v.PersonalData != "" {
		t.Errorf("View(sealed) = %+v, want %+v", v, plainView)
	}

	erasedView := func(v api.Order) bool {
		return v.Customer.Name == nil && v.Customer.Email == nil && v.ShippingAddress == nil && v.Cancellation.Reason == nil &&
			v.PersonalData == api.PersonalDataErased && v.Customer.ID == "cus_1042" && v.Total == 3998
	}
	if v, err := given(placed, cancelled, erasedEvent).View(nil); err != nil || !erasedView(v) {
		t.Errorf("View after PersonalDataErased = %+v, %v; want the personal fields null and personal_data erased", v, err)
	}
	if v, err := s.Redact().View(keys); err != nil || !erasedView(v) {
		t.Errorf("View(Redact()) = %+v, %v", v, err)
	}
	keys.Erase("cus_1042")
	if v, err := s.View(keys); err != nil || !erasedView(v) {
		t.Errorf("View with the key gone = %+v, %v; want the personal fields null and personal_data erased", v, err)
	}
	keys.OpenErr = errors.New("key store down")
	if _, err := s.View(keys); err == nil {
		t.Error("View with a failing key store: no error")
	}
}

func TestErasePersonalData(t *testing.T) {
	keys := piitest.New()
	old, _ := keys.Key(context.Background(), "cus_1042")
	oldID := old.KeyID()
	sealedPlaced, _ := events.SealAt(placed, 0, "o-1", old)
	at := time.Unix(50, 0).UTC()
	erase := events.PersonalDataErased{ErasureID: "e-2", RequestedAt: at}
	tests := []struct {
		name string
		past []events.Payload
		keys []string
		want []events.Payload
	}{
		{"plain personal data", then(placed, paid), nil, then(erase)},
		{"sealed with an erased key", then(sealedPlaced), []string{oldID}, then(erase)},
		{"sealed with another key: given after the erasure", then(sealedPlaced), []string{"another"}, nil},
		{"already erased", then(placed, erasedEvent), []string{oldID}, nil},
		{"closed orders too", then(placed, cancelled), nil, then(erase)},
	}
	for _, tt := range tests {
		got, err := given(tt.past...).ErasePersonalData("e-2", at, tt.keys)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ErasePersonalData() = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if _, err := (State{}).ErasePersonalData("e", at, nil); err == nil {
		t.Error("ErasePersonalData of a missing order: no error")
	}
}

package order

import (
	"reflect"
	"testing"
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

func TestFromViewInvertsView(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	states := []State{
		{ID: "o-1", Version: 1, Status: StatusPlaced, Customer: events.Customer{ID: "c", Name: "Ada", Email: "a@x.io"},
			ShippingAddress: events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"},
			Currency:        "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 2, UnitPrice: 5}}, Total: 10, PlacedAt: at, UpdatedAt: at},
		{ID: "o-2", Version: 4, Status: StatusShipped, Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 7}},
			Total: 7, PaidAmount: 7, PaymentReference: "p", Carrier: "DHL", Parcels: []events.Parcel{{TrackingNumber: "T1"}}, PlacedAt: at, UpdatedAt: at.Add(time.Hour)},
		{ID: "o-3", Version: 3, Status: StatusCancelled, Currency: "EUR", Items: []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 7}},
			Total: 7, PaidAmount: 7, PaymentReference: "p", CancelReason: "late", RefundDue: 7, PlacedAt: at, UpdatedAt: at},
	}
	for _, s := range states {
		if got := FromView(s.View()); !reflect.DeepEqual(got, s) {
			t.Errorf("FromView(View(%s)) = %+v, want %+v", s.ID, got, s)
		}
	}
}

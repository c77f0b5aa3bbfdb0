package order

import (
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// View is the state in its API shape (pkg/api), as the command API answers it and the read models
// store it.
func (s State) View() api.Order {
	o := api.Order{ID: s.ID, Version: s.Version, Status: string(s.Status), Currency: s.Currency, Total: s.Total,
		Items: s.Items, Customer: s.Customer, ShippingAddress: s.ShippingAddress, PlacedAt: s.PlacedAt, UpdatedAt: s.UpdatedAt}
	if o.Items == nil {
		o.Items = []events.LineItem{}
	}
	if s.PaymentReference != "" {
		o.Payment = &api.Payment{Amount: s.PaidAmount, Reference: s.PaymentReference}
	}
	if len(s.Parcels) > 0 {
		// The API's shipment has one tracking number: the commands record one parcel per shipment.
		o.Shipment = &api.Shipment{Carrier: s.Carrier, TrackingNumber: s.Parcels[0].TrackingNumber}
	}
	if s.Status == StatusCancelled {
		o.Cancellation = &api.Cancellation{Reason: s.CancelReason, RefundDue: s.RefundDue}
	}
	return o
}

// FromView is the inverse of View: it rebuilds the folded state from an order's API shape (the read
// models keep orders in this shape and evolve them further with each new event).
func FromView(o api.Order) State {
	s := State{ID: o.ID, Version: o.Version, Status: Status(o.Status), Customer: o.Customer,
		ShippingAddress: o.ShippingAddress, Currency: o.Currency, Items: o.Items, Total: o.Total,
		PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt}
	if len(s.Items) == 0 {
		s.Items = nil
	}
	if o.Payment != nil {
		s.PaidAmount, s.PaymentReference = o.Payment.Amount, o.Payment.Reference
	}
	if o.Shipment != nil {
		s.Carrier, s.Parcels = o.Shipment.Carrier, []events.Parcel{{TrackingNumber: o.Shipment.TrackingNumber}}
	}
	if o.Cancellation != nil {
		s.CancelReason, s.RefundDue = o.Cancellation.Reason, o.Cancellation.RefundDue
	}
	return s
}

// FromViews is FromView of every order of a read model's answer, by id.
func FromViews(docs map[string]api.Order) map[string]State {
	out := make(map[string]State, len(docs))
	for id, d := range docs {
		out[id] = FromView(d)
	}
	return out
}

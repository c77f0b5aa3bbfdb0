// Package api holds the JSON shapes the orders HTTP APIs answer with, shared by the command API and the
// query API so an order looks the same wherever it is read.
package api

import (
	"time"

	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/events"
)

// Order is an order as the APIs show it.
type Order struct {
	ID              string            `json:"id"`
	Version         int64             `json:"version"`
	Status          string            `json:"status"`
	Currency        string            `json:"currency"`
	Total           int64             `json:"total"`
	Items           []events.LineItem `json:"items"`
	Customer        events.Customer   `json:"customer"`
	ShippingAddress events.Address    `json:"shipping_address"`
	Payment         *Payment          `json:"payment,omitempty"`
	Shipment        *Shipment         `json:"shipment,omitempty"`
	Cancellation    *Cancellation     `json:"cancellation,omitempty"`
	PlacedAt        time.Time         `json:"placed_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

// Payment is present once the order is paid.
type Payment struct {
	Amount    int64  `json:"amount"`
	Reference string `json:"reference"`
}

// Shipment is present once the order is shipped.
type Shipment struct {
	Carrier        string `json:"carrier"`
	TrackingNumber string `json:"tracking_number"`
}

// Cancellation is present once the order is cancelled.
type Cancellation struct {
	Reason    string `json:"reason"`
	RefundDue int64  `json:"refund_due"`
}

// FromState shows a folded order.
func FromState(s order.State) Order {
	o := Order{ID: s.ID, Version: s.Version, Status: string(s.Status), Currency: s.Currency, Total: s.Total,
		Items: s.Items, Customer: s.Customer, ShippingAddress: s.ShippingAddress, PlacedAt: s.PlacedAt, UpdatedAt: s.UpdatedAt}
	if o.Items == nil {
		o.Items = []events.LineItem{}
	}
	if s.PaymentReference != "" {
		o.Payment = &Payment{Amount: s.PaidAmount, Reference: s.PaymentReference}
	}
	if s.TrackingNumber != "" {
		o.Shipment = &Shipment{Carrier: s.Carrier, TrackingNumber: s.TrackingNumber}
	}
	if s.Status == order.StatusCancelled {
		o.Cancellation = &Cancellation{Reason: s.CancelReason, RefundDue: s.RefundDue}
	}
	return o
}

// ToState is the inverse of FromState: it rebuilds the folded state from an order's API shape (the
// search projector keeps its documents in this shape and evolves them further).
func ToState(o Order) order.State {
	s := order.State{ID: o.ID, Version: o.Version, Status: order.Status(o.Status), Customer: o.Customer,
		ShippingAddress: o.ShippingAddress, Currency: o.Currency, Items: o.Items, Total: o.Total,
		PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt}
	if len(s.Items) == 0 {
		s.Items = nil
	}
	if o.Payment != nil {
		s.PaidAmount, s.PaymentReference = o.Payment.Amount, o.Payment.Reference
	}
	if o.Shipment != nil {
		s.Carrier, s.TrackingNumber = o.Shipment.Carrier, o.Shipment.TrackingNumber
	}
	if o.Cancellation != nil {
		s.CancelReason, s.RefundDue = o.Cancellation.Reason, o.Cancellation.RefundDue
	}
	return s
}

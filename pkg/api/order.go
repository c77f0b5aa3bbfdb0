// Package api holds the JSON shapes the orders HTTP APIs answer with, shared by the command API and the
// query API so an order looks the same wherever it is read. It is pure types: no behaviour and no
// import of the module's internal packages, so clients outside this module can use it (the domain
// converts its state to these shapes: internal/order, view.go).
package api

import (
	"time"

	"github.com/orders-oss/orders/pkg/events"
)

// Order is an order as the APIs show it. Its personal fields (the customer's name and email, the
// shipping address, a cancellation's reason) are null once they were erased, and PersonalData then says
// "erased" (docs/privacy.md).
type Order struct {
	ID              string            `json:"id"`
	Version         int64             `json:"version"`
	Status          string            `json:"status"`
	Currency        string            `json:"currency"`
	Total           int64             `json:"total"`
	Items           []events.LineItem `json:"items"`
	Customer        Customer          `json:"customer"`
	ShippingAddress *events.Address   `json:"shipping_address"`
	PersonalData    string            `json:"personal_data,omitempty"`
	Payment         *Payment          `json:"payment,omitempty"`
	Shipment        *Shipment         `json:"shipment,omitempty"`
	Cancellation    *Cancellation     `json:"cancellation,omitempty"`
	PlacedAt        time.Time         `json:"placed_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

// PersonalDataErased is Order.PersonalData once the customer's personal data was erased.
const PersonalDataErased = "erased"

// Customer is who placed the order; Name and Email are nil once erased.
type Customer struct {
	ID    string  `json:"id"`
	Name  *string `json:"name"`
	Email *string `json:"email"`
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

// Cancellation is present once the order is cancelled; Reason is nil once erased.
type Cancellation struct {
	Reason    *string `json:"reason"`
	RefundDue int64   `json:"refund_due"`
}

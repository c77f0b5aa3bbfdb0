package events

import "time"

// Event type names: part of the wire contract, never renamed.
const (
	TypeOrderPlaced            = "OrderPlaced"
	TypeOrderItemAdded         = "OrderItemAdded"
	TypeOrderItemRemoved       = "OrderItemRemoved"
	TypeShippingAddressChanged = "ShippingAddressChanged"
	TypePaymentConfirmed       = "PaymentConfirmed"
	TypeOrderShipped           = "OrderShipped"
	TypeOrderDelivered         = "OrderDelivered"
	TypeOrderCancelled         = "OrderCancelled"
	TypePersonalDataErased     = "PersonalDataErased"
)

// Current schema version of each event type: what Encode writes and what Decode returns after
// upcasting. A payload's shape changes only together with its version (see upcast in codec.go);
// adding, renaming or removing a field is a change.
const (
	VersionOrderPlaced            = 2 // v1 had the customer's name and email and the address in plain text; v2 seals them (personal.go)
	VersionOrderItemAdded         = 1
	VersionOrderItemRemoved       = 1
	VersionShippingAddressChanged = 2 // v2 seals the address
	VersionPaymentConfirmed       = 1
	VersionOrderShipped           = 2 // v1 had one tracking_number; v2 has parcels (evolution.go)
	VersionOrderDelivered         = 1
	VersionOrderCancelled         = 2 // v2 seals the reason
	VersionPersonalDataErased     = 1
)

// Payload is the business fact an event records: one of the types below, as a value.
type Payload interface {
	EventType() string
}

// Customer is who placed the order: its id (pseudonymous, never sealed: it says whose the order is)
// and its name and email (personal data).
type Customer struct {
	ID    string           `json:"id"`
	Name  Personal[string] `json:"name"`
	Email Personal[string] `json:"email"`
}

// Address is a postal address; Country is ISO 3166-1 alpha-2.
type Address struct {
	Name       string `json:"name"`
	Line1      string `json:"line1"`
	Line2      string `json:"line2"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Country    string `json:"country"`
}

// LineItem is a quantity of one sku at a unit price in minor units of the order's currency.
type LineItem struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int64  `json:"quantity"`
	UnitPrice int64  `json:"unit_price"`
}

// OrderPlaced starts an order. Its time is the envelope's OccurredAt; payloads hold business facts only.
// The customer's name and email and the address are personal data: sealed from schema version 2 on.
type OrderPlaced struct {
	Customer        Customer
	ShippingAddress Personal[Address]
	Currency        string
	Items           []LineItem
}

// OrderItemAdded adds a line, or adds Item.Quantity to the line of the same sku (whose name and unit
// price stay as they are; the domain records an addition to a line only at the line's unit price).
type OrderItemAdded struct {
	Item LineItem `json:"item"`
}

// OrderItemRemoved removes the line of a sku.
type OrderItemRemoved struct {
	SKU string `json:"sku"`
}

// ShippingAddressChanged replaces the shipping address (personal data, sealed from schema version 2).
type ShippingAddressChanged struct {
	ShippingAddress Personal[Address]
}

// PaymentConfirmed records the payment of the order's total.
type PaymentConfirmed struct {
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Reference string `json:"reference"`
}

// OrderShipped records the hand-over of the order to a carrier, in one or more parcels, each tracked
// on its own (schema version 2; version 1 had a single tracking_number: see evolution.go).
type OrderShipped struct {
	Carrier string   `json:"carrier"`
	Parcels []Parcel `json:"parcels"`
}

// Parcel is one package of a shipment, with the carrier's tracking number for it.
type Parcel struct {
	TrackingNumber string `json:"tracking_number"`
}

// OrderDelivered records the delivery.
type OrderDelivered struct{}

// OrderCancelled closes the order; RefundDue is what was paid (0 when unpaid). The reason is free text
// a person typed, which may say anything about them: personal data, sealed from schema version 2.
type OrderCancelled struct {
	Reason    Personal[string]
	RefundDue int64
}

// PersonalDataErased records that the personal data of the order's customer was erased on request
// (DELETE /customers/{customer_id}/personal-data): the customer's data key was deleted, and the order's
// personal fields are gone from here on. Who asked is the event's actor; it holds no personal data.
type PersonalDataErased struct {
	// ErasureID is the erasure request (its progress: GET /customers/{id}/personal-data/erasures/{id}).
	ErasureID string `json:"erasure_id"`
	// RequestedAt is when it was asked for (the event is recorded when the order's turn came).
	RequestedAt time.Time `json:"requested_at"`
}

func (OrderPlaced) EventType() string            { return TypeOrderPlaced }
func (OrderItemAdded) EventType() string         { return TypeOrderItemAdded }
func (OrderItemRemoved) EventType() string       { return TypeOrderItemRemoved }
func (ShippingAddressChanged) EventType() string { return TypeShippingAddressChanged }
func (PaymentConfirmed) EventType() string       { return TypePaymentConfirmed }
func (OrderShipped) EventType() string           { return TypeOrderShipped }
func (OrderDelivered) EventType() string         { return TypeOrderDelivered }
func (OrderCancelled) EventType() string         { return TypeOrderCancelled }
func (PersonalDataErased) EventType() string     { return TypePersonalDataErased }

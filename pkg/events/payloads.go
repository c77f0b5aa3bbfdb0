package events

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
)

// Current schema version of each event type: what Encode writes and what Decode returns after
// upcasting. A payload's shape changes only together with its version (see upcast in codec.go);
// adding, renaming or removing a field is a change.
const (
	VersionOrderPlaced            = 1
	VersionOrderItemAdded         = 1
	VersionOrderItemRemoved       = 1
	VersionShippingAddressChanged = 1
	VersionPaymentConfirmed       = 1
	VersionOrderShipped           = 2 // v1 had one tracking_number; v2 has parcels (upcast.go)
	VersionOrderDelivered         = 1
	VersionOrderCancelled         = 1
)

// Payload is the business fact an event records: one of the types below, as a value.
type Payload interface {
	EventType() string
}

// Customer is who placed the order.
type Customer struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
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
type OrderPlaced struct {
	Customer        Customer   `json:"customer"`
	ShippingAddress Address    `json:"shipping_address"`
	Currency        string     `json:"currency"`
	Items           []LineItem `json:"items"`
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

// ShippingAddressChanged replaces the shipping address.
type ShippingAddressChanged struct {
	ShippingAddress Address `json:"shipping_address"`
}

// PaymentConfirmed records the payment of the order's total.
type PaymentConfirmed struct {
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	Reference string `json:"reference"`
}

// OrderShipped records the hand-over of the order to a carrier, in one or more parcels, each tracked
// on its own (schema version 2; version 1 had a single tracking_number: see upcast.go).
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

// OrderCancelled closes the order; RefundDue is what was paid (0 when unpaid).
type OrderCancelled struct {
	Reason    string `json:"reason"`
	RefundDue int64  `json:"refund_due"`
}

func (OrderPlaced) EventType() string            { return TypeOrderPlaced }
func (OrderItemAdded) EventType() string         { return TypeOrderItemAdded }
func (OrderItemRemoved) EventType() string       { return TypeOrderItemRemoved }
func (ShippingAddressChanged) EventType() string { return TypeShippingAddressChanged }
func (PaymentConfirmed) EventType() string       { return TypePaymentConfirmed }
func (OrderShipped) EventType() string           { return TypeOrderShipped }
func (OrderDelivered) EventType() string         { return TypeOrderDelivered }
func (OrderCancelled) EventType() string         { return TypeOrderCancelled }

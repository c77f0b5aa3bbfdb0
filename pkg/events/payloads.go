package events

// Event type names: part of the wire contract, never renamed. A payload's shape changes only with a new
// schema version (see codec.go for upcasting).
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

// Payload is the business fact an event records. Each type's current schema version is in codec.go.
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

// OrderPlaced starts an order.
type OrderPlaced struct {
	Customer        Customer   `json:"customer"`
	ShippingAddress Address    `json:"shipping_address"`
	Currency        string     `json:"currency"`
	Items           []LineItem `json:"items"`
}

// OrderItemAdded adds a line, or adds Quantity to the line of the same sku.
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

// OrderShipped records the hand-over to a carrier.
type OrderShipped struct {
	Carrier        string `json:"carrier"`
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

package order

import (
	"fmt"
	"strings"
)

// Kind says what sort of refusal an Error is; the HTTP layer maps each kind to one status.
type Kind int

const (
	// Invalid: the command's values are wrong (HTTP 422).
	Invalid Kind = iota + 1
	// RuleViolated: the values are fine but the order's state forbids the command now (HTTP 409).
	RuleViolated
	// NotFound: the order does not exist (HTTP 404).
	NotFound
)

// FieldError names one invalid field by its JSON path, like "items[0].quantity".
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the domain's only error type. Code is stable and machine-readable.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Fields  []FieldError
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Code + ": " + e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, strings.Join(parts, "; "))
}

// ErrNotFound is the error of a command or read on an order that does not exist.
func ErrNotFound() *Error {
	return &Error{Kind: NotFound, Code: CodeNotFound, Message: "no order with this id"}
}

func ruleViolated(code, format string, args ...any) *Error {
	return &Error{Kind: RuleViolated, Code: code, Message: fmt.Sprintf(format, args...)}
}

func totalOverflow(field string) *Error {
	return &Error{Kind: Invalid, Code: CodeTotalOverflow, Message: "the order total would be too large",
		Fields: []FieldError{{Field: field, Message: "makes the order total larger than 9223372036854775807"}}}
}

// Stable error codes, with the Kind each comes with.
const (
	CodeValidation        = "validation_failed"             // Invalid: see Fields
	CodeTotalOverflow     = "total_out_of_range"            // Invalid: the order total would not fit in int64
	CodeNotFound          = "order_not_found"               // NotFound
	CodeItemsLocked       = "items_locked_after_payment"    // RuleViolated: items change only while placed
	CodeAddressLocked     = "address_locked_after_shipment" // RuleViolated
	CodePaymentMismatch   = "payment_mismatch"              // RuleViolated: amount or currency is not the total's
	CodeAlreadyPaid       = "already_paid"                  // RuleViolated
	CodeNotPaid           = "not_paid"                      // RuleViolated: ship needs a paid order
	CodeNotShipped        = "not_shipped"                   // RuleViolated: deliver needs a shipped order
	CodeAlreadyShipped    = "already_shipped"               // RuleViolated: ship twice, cancel after shipment
	CodeOrderClosed       = "order_closed"                  // RuleViolated: delivered or cancelled
	CodeUnknownSKU        = "unknown_sku"                   // RuleViolated: remove a sku the order has not
	CodeLastItem          = "last_item"                     // RuleViolated: remove the only line
	CodeTooManyItems      = "too_many_items"                // RuleViolated: a 101st line
	CodeQuantityOverflow  = "quantity_out_of_range"         // RuleViolated: a line's quantity would pass 10,000
	CodeUnitPriceMismatch = "unit_price_mismatch"           // RuleViolated: add to a line at another unit price
)

// validator collects field errors.
type validator struct{ fields []FieldError }

func (v *validator) add(field, format string, args ...any) {
	v.fields = append(v.fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Kind: Invalid, Code: CodeValidation, Message: "the command has invalid values", Fields: v.fields}
}

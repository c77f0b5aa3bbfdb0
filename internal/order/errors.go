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
	Field   string
	Message string
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

func ruleViolated(code, format string, args ...any) *Error {
	return &Error{Kind: RuleViolated, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Stable error codes.
const (
	CodeValidation       = "validation_failed"
	CodeNotFound         = "order_not_found"
	CodeItemsLocked      = "items_locked_after_payment"
	CodeAddressLocked    = "address_locked_after_shipment"
	CodePaymentMismatch  = "payment_mismatch"
	CodeAlreadyPaid      = "already_paid"
	CodeNotPaid          = "not_paid"
	CodeNotShipped       = "not_shipped"
	CodeAlreadyShipped   = "already_shipped"
	CodeOrderClosed      = "order_closed"
	CodeUnknownSKU       = "unknown_sku"
	CodeLastItem         = "last_item"
	CodeTooManyItems     = "too_many_items"
	CodeQuantityOverflow = "quantity_out_of_range"
	CodeTotalOverflow    = "total_out_of_range"
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

package order

import (
	"math"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/orders-oss/orders/pkg/events"
)

// Limits of the values an order accepts.
const (
	MaxLines     = 100
	MaxQuantity  = 10_000
	MaxTextLen   = 200
	MaxSKULen    = 64
	MaxReasonLen = 500
)

func (v *validator) text(field, s string, required bool, maxLen int) {
	switch {
	case required && strings.TrimSpace(s) == "":
		v.add(field, "is required")
	case utf8.RuneCountInString(s) > maxLen:
		v.add(field, "must be at most %d characters", maxLen)
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case strings.ContainsFunc(s, disallowedControl):
		// NUL in particular: Postgres cannot store it in jsonb, and no name or address needs it.
		v.add(field, "must not contain control characters")
	}
}

// ValidCustomerID reports whether id is a customer id an order accepts (customer.id): 1 to MaxTextLen
// characters, not only white space, no control character but tab, line feed and carriage return.
func ValidCustomerID(id string) bool {
	var v validator
	v.text("id", id, true, MaxTextLen)
	return len(v.fields) == 0
}

// disallowedControl is every control character but tab, line feed and carriage return.
func disallowedControl(r rune) bool {
	return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r'
}

func (v *validator) customer(field string, c Customer) {
	v.text(field+".id", c.ID, true, MaxTextLen)
	v.text(field+".name", c.Name, true, MaxTextLen)
	v.text(field+".email", c.Email, true, MaxTextLen)
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			v.add(field+".email", "must be an email address like ada@example.com")
		}
	}
}

func (v *validator) address(field string, a events.Address) {
	v.text(field+".name", a.Name, true, MaxTextLen)
	v.text(field+".line1", a.Line1, true, MaxTextLen)
	v.text(field+".line2", a.Line2, false, MaxTextLen)
	v.text(field+".city", a.City, true, MaxTextLen)
	v.text(field+".postal_code", a.PostalCode, true, 20)
	if !isUpperLetters(a.Country, 2) {
		v.add(field+".country", "must be an ISO 3166-1 alpha-2 code like GB")
	}
}

func (v *validator) currency(field, c string) {
	if !isUpperLetters(c, 3) {
		v.add(field, "must be an ISO 4217 code like EUR")
	}
}

// item checks a line; prefix is its JSON path ("items[2]"), or "" when the item is the whole body.
func (v *validator) item(prefix string, it events.LineItem) {
	path := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	before := len(v.fields)
	v.text(path("sku"), it.SKU, true, MaxSKULen)
	if it.SKU != "" && len(v.fields) == before && !urlSafeSKU(it.SKU) { // one message per field
		v.add(path("sku"), "must not contain / ? # %%, control characters or surrounding spaces, nor be . or ..")
	}
	v.text(path("name"), it.Name, true, MaxTextLen)
	quantityOK := it.Quantity >= 1 && it.Quantity <= MaxQuantity
	if !quantityOK {
		v.add(path("quantity"), "must be from 1 to %d", MaxQuantity)
	}
	if it.UnitPrice < 0 {
		v.add(path("unit_price"), "must be 0 or more")
	} else if _, ok := lineTotal(it.Quantity, it.UnitPrice); quantityOK && !ok {
		v.add(path("unit_price"), "is too large: quantity × unit_price does not fit in a 64-bit integer")
	}
}

// urlSafeSKU reports whether a sku can be one segment of a URL path (DELETE /orders/{id}/items/{sku})
// that no client or router rewrites.
func urlSafeSKU(sku string) bool {
	if sku == "." || sku == ".." || strings.TrimSpace(sku) != sku || strings.ContainsAny(sku, "/?#%") {
		return false
	}
	return !strings.ContainsFunc(sku, unicode.IsControl)
}

func isUpperLetters(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// lineTotal multiplies without overflow; ok is false when either factor is negative or the product
// does not fit in int64.
func lineTotal(quantity, unitPrice int64) (int64, bool) {
	if quantity < 0 || unitPrice < 0 {
		return 0, false
	}
	if quantity != 0 && unitPrice > math.MaxInt64/quantity {
		return 0, false
	}
	return quantity * unitPrice, true
}

// total sums the lines; ok is false on overflow.
func total(items []events.LineItem) (int64, bool) {
	var sum int64
	for _, it := range items {
		lt, ok := lineTotal(it.Quantity, it.UnitPrice)
		if !ok || sum > math.MaxInt64-lt {
			return 0, false
		}
		sum += lt
	}
	return sum, true
}

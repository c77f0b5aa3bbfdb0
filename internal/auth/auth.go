// Package auth is who may do what in orders: it verifies OAuth 2.0 bearer tokens (JWTs signed with an
// asymmetric key of a JWKS), turns them into a Principal (subject, role, customer binding), decides what
// a principal may do (Can, Sees), and limits request rates per principal and per client address. The
// service chassis (internal/httpserver) installs Middleware on every route but health and metrics; the
// application layer (internal/command) and the read API check Sees against an order's customer.
//
// The token contract (docs/security.md): iss = AUTH_ISSUER, aud contains AUTH_AUDIENCE, exp required,
// nbf and iat honoured with a small leeway, sub the principal, the claim orders_role one of customer,
// staff or admin, and for a customer the claim orders_customer_id. The JOSE library is go-jose v4: it
// makes the caller name the accepted algorithms on every parse, never accepts "none", and verifies with
// the key type the algorithm needs, so an HMAC token cannot be checked against a public key.
package auth

import (
	"context"
	"fmt"
)

// The claims orders reads besides the registered ones (RFC 7519).
const (
	// RoleClaim names the principal's role: customer, staff or admin.
	RoleClaim = "orders_role"
	// CustomerClaim binds a customer principal to its customer id.
	CustomerClaim = "orders_customer_id"
)

// Role is what a principal is to orders.
type Role string

// The roles. A customer acts on its own orders only; staff on every order; admin is staff plus the
// projectors' operator endpoints.
const (
	Customer Role = "customer"
	Staff    Role = "staff"
	Admin    Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Customer, Staff, Admin:
		return r, nil
	}
	return "", fmt.Errorf("role %q is not customer, staff or admin", s)
}

// Principal is an authenticated caller.
type Principal struct {
	// Subject is the token's sub: who acts (recorded as the actor of the events it causes).
	Subject string
	Role    Role
	// CustomerID is the customer a customer principal is bound to ("" for staff and admin).
	CustomerID string
}

// Action is something a principal may be allowed to do.
type Action string

// The actions the APIs check. ChangeOrder covers adding and removing items, changing the address,
// paying and cancelling.
const (
	PlaceOrder   Action = "place_order"
	ReadOrders   Action = "read_orders"
	ChangeOrder  Action = "change_order"
	ShipOrder    Action = "ship_order"
	DeliverOrder Action = "deliver_order"
	ReplayParked Action = "replay_parked"
	// ErasePersonalData is asking for (and following) the erasure of a customer's personal data: staff
	// and admin (docs/privacy.md).
	ErasePersonalData Action = "erase_personal_data"
)

// Can reports whether p may do a at all (which orders it may do it to is Sees).
func (p Principal) Can(a Action) bool {
	switch p.Role {
	case Admin:
		return true
	case Staff:
		return a != ReplayParked
	case Customer:
		return p.CustomerID != "" && (a == PlaceOrder || a == ReadOrders || a == ChangeOrder)
	}
	return false
}

// Sees reports whether p may see (and so act on) an order of the given customer. A principal that may
// not see an order is told it does not exist, so that nothing leaks about other customers' orders.
func (p Principal) Sees(customerID string) bool {
	switch p.Role {
	case Staff, Admin:
		return true
	case Customer:
		return p.CustomerID != "" && p.CustomerID == customerID
	}
	return false
}

// Scope is the customer id every read of p is confined to, or "" when p reads every order.
func (p Principal) Scope() string {
	if p.Role == Customer {
		return p.CustomerID
	}
	return ""
}

// IdempotencyScope is the namespace of p's idempotency keys: two principals may use the same key.
func (p Principal) IdempotencyScope() string { return p.Subject }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal Middleware put in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

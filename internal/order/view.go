package order

import (
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// View is the state in its API shape (pkg/api), as the command API answers it and the read models
// store it. Sealed personal fields are opened with o (nil will do for a state without any); a field
// whose key is gone is null, and so is every field of an erased order, which then says
// personal_data "erased". An error means a sealed field could not be read (o failed, or its data does
// not authenticate): nothing is shown rather than a guess.
func (s State) View(o events.Opener) (api.Order, error) {
	v := api.Order{ID: s.ID, Version: s.Version, Status: string(s.Status), Currency: s.Currency, Total: s.Total,
		Items: s.Items, PlacedAt: s.PlacedAt, UpdatedAt: s.UpdatedAt}
	if v.Items == nil {
		v.Items = []events.LineItem{}
	}
	erased := s.Erased
	var err error
	v.Customer.ID = s.Customer.ID
	if v.Customer.Name, err = open(s.Customer.Name, o, s.ID, events.FieldCustomerName, &erased); err != nil {
		return api.Order{}, err
	}
	if v.Customer.Email, err = open(s.Customer.Email, o, s.ID, events.FieldCustomerEmail, &erased); err != nil {
		return api.Order{}, err
	}
	if v.ShippingAddress, err = open(s.ShippingAddress, o, s.ID, events.FieldShippingAddress, &erased); err != nil {
		return api.Order{}, err
	}
	if s.PaymentReference != "" {
		v.Payment = &api.Payment{Amount: s.PaidAmount, Reference: s.PaymentReference}
	}
	if len(s.Parcels) > 0 {
		// The API's shipment has one tracking number: the commands record one parcel per shipment.
		v.Shipment = &api.Shipment{Carrier: s.Carrier, TrackingNumber: s.Parcels[0].TrackingNumber}
	}
	if s.Status == StatusCancelled {
		v.Cancellation = &api.Cancellation{RefundDue: s.RefundDue}
		if v.Cancellation.Reason, err = open(s.CancelReason, o, s.ID, events.FieldCancellationReason, &erased); err != nil {
			return api.Order{}, err
		}
	}
	if erased {
		v.PersonalData = api.PersonalDataErased
	}
	return v, nil
}

// open is a personal field of order id opened with o, or nil: absent, or its key is gone (then it
// sets *erased).
func open[T any](p events.Personal[T], o events.Opener, id, field string, erased *bool) (*T, error) {
	v, ok, err := events.Open(p, o, events.AssociatedData(id, field))
	if err != nil || !ok {
		*erased = *erased || (err == nil && !p.Absent())
		return nil, err
	}
	return &v, nil
}

// FromView is the inverse of View: it rebuilds the folded state from an order's API shape (the read
// models keep orders in this shape and evolve them further with each new event). Its personal fields
// come back in plain text, or absent where the view has null.
func FromView(o api.Order) State {
	s := State{ID: o.ID, Version: o.Version, Status: Status(o.Status), Currency: o.Currency, Items: o.Items, Total: o.Total,
		PlacedAt: o.PlacedAt, UpdatedAt: o.UpdatedAt, Erased: o.PersonalData == api.PersonalDataErased}
	s.Customer = events.Customer{ID: o.Customer.ID, Name: plainOrAbsent(o.Customer.Name), Email: plainOrAbsent(o.Customer.Email)}
	s.ShippingAddress = plainOrAbsent(o.ShippingAddress)
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
		s.CancelReason, s.RefundDue = plainOrAbsent(o.Cancellation.Reason), o.Cancellation.RefundDue
	}
	return s
}

func plainOrAbsent[T any](v *T) events.Personal[T] {
	if v == nil {
		return events.Personal[T]{}
	}
	return events.Plain(*v)
}

// FromViews is FromView of every order of a read model's answer, by id.
func FromViews(docs map[string]api.Order) map[string]State {
	out := make(map[string]State, len(docs))
	for id, d := range docs {
		out[id] = FromView(d)
	}
	return out
}

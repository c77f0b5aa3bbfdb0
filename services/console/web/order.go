package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orders-oss/orders/internal/command"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

// timelineEntry is one event of an order's history as the order page shows it: the event as stored,
// and what it changed in the order (the domain's own Evolve, field by field).
type timelineEntry struct {
	Event   events.Envelope
	Changes []change
	// Related are the other versions of this order that share the event's correlation id.
	Related []int64
	Error   string // the event could not be decoded by this version of the code
}

type change struct {
	Field, Before, After string
}

// orderPage shows an order now and as it was: ?version=N (right after event N) or ?as_of=<time> (the
// last event recorded at or before it; a time without zone is UTC), read exactly as the command API's
// time travel reads it; and its whole history, each event with what it changed.
func (s *Server) orderPage(c echo.Context) error {
	id := c.Param("id")
	ctx, cancel := context.WithTimeout(c.Request().Context(), 10*time.Second)
	defer cancel()
	var at command.At
	var problem string
	if v := c.QueryParam("version"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			problem = "version must be a whole number, 1 or more"
		} else {
			at.Version = n
		}
	} else if v := c.QueryParam("as_of"); v != "" {
		t, err := parseTime(v)
		if err != nil {
			problem = "as of must be a time like 2026-11-26T14:05 (UTC) or an RFC 3339 time"
		} else {
			at.Time = t
		}
	}
	shown, err := s.cfg.Orders.Order(ctx, principal(c), id, at)
	if errors.Is(err, command.ErrNotInHistory) {
		problem = "The order has no such point in its history: " + err.Error() + ". Showing it now."
		shown, err = s.cfg.Orders.Order(ctx, principal(c), id, command.At{})
	}
	if err != nil {
		return s.orderError(id, err)
	}
	steps, err := s.cfg.Orders.Timeline(ctx, principal(c), id)
	if err != nil {
		return s.orderError(id, err)
	}
	latest := int64(len(steps))

	// Each event with what it changed: the order before it and after it, as time travel shows them
	// (internal/command folds with the domain's Evolve, upcasting old schema versions as every reader
	// does, and opens or erases the personal data as the APIs do).
	var (
		before   api.Order
		timeline = make([]timelineEntry, len(steps))
		byCorr   = map[string][]int64{}
	)
	for i, st := range steps {
		e := st.Event
		timeline[i].Event = e
		if e.Metadata.CorrelationID != "" {
			byCorr[e.Metadata.CorrelationID] = append(byCorr[e.Metadata.CorrelationID], e.Version)
		}
		if st.Err != nil {
			timeline[i].Error = st.Err.Error()
			continue
		}
		timeline[i].Changes = diff(before, st.After, i == 0)
		before = st.After
	}
	for i := range timeline {
		for _, v := range byCorr[timeline[i].Event.Metadata.CorrelationID] {
			if v != timeline[i].Event.Version {
				timeline[i].Related = append(timeline[i].Related, v)
			}
		}
	}
	slices.Reverse(timeline) // newest first on the page
	var first, last time.Time
	if len(steps) > 0 {
		first, last = steps[0].Event.RecordedAt, steps[len(steps)-1].Event.RecordedAt
	}
	return s.render(c, http.StatusOK, "order", map[string]any{
		"ID": id, "Order": shown, "At": shown.Version, "Latest": latest, "Current": shown.Version == latest, "Timeline": timeline,
		"Problem": problem, "AsOf": c.QueryParam("as_of"), "First": first, "Last": last,
	})
}

func (s *Server) orderError(id string, err error) error {
	var de *order.Error
	var unknown *events.UnknownEventError
	switch {
	case errors.As(err, &de) && de.Kind == order.NotFound:
		return &pageError{Status: http.StatusNotFound, Title: "No such order", Message: "No order has the id " + id + "."}
	case errors.As(err, &unknown):
		return &pageError{Status: http.StatusServiceUnavailable, Title: "A newer release wrote this order",
			Message: "This console cannot read one of the order's events (" + unknown.Error() + "); it is older than the release that wrote it."}
	}
	s.cfg.Log.Warn("console order read failed", "order_id", id, "error", err.Error())
	return &pageError{Status: http.StatusServiceUnavailable, Title: "The event store cannot answer",
		Message: "The order could not be read right now. Try again in a moment."}
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a time: %q", s)
}

// diff lists the fields that differ between two views of an order, as dotted paths with their JSON
// values (the version and updated time change with every event and are left out; so is everything
// for the first event, which shows all it set).
func diff(before, after api.Order, first bool) []change {
	a, b := flatten(before), flatten(after)
	var out []change
	for k, v := range b {
		if k == "version" || k == "updated_at" {
			continue
		}
		if first {
			// The first event sets what it says; there was nothing before it.
			if v != `""` && v != "0" && v != "null" && v != "[]" {
				out = append(out, change{Field: k, After: v})
			}
			continue
		}
		if w, ok := a[k]; !ok || w != v {
			out = append(out, change{Field: k, Before: a[k], After: v})
		}
	}
	for k, v := range a {
		if _, ok := b[k]; !ok && !first && k != "version" && k != "updated_at" {
			out = append(out, change{Field: k, Before: v, After: ""})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// flatten turns a view into dotted paths and JSON values: items by sku, not by position, so that
// removing a line shows as that line's removal.
func flatten(o api.Order) map[string]string {
	raw, _ := json.Marshal(o)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				walk(join(prefix, k), x)
			}
		case []any:
			if prefix == "items" {
				for _, it := range t {
					if m, ok := it.(map[string]any); ok {
						walk(fmt.Sprintf("items[%v]", m["sku"]), it)
					}
				}
				if len(t) == 0 {
					out[prefix] = "[]"
				}
				return
			}
			b, _ := json.Marshal(t)
			out[prefix] = string(b)
		default:
			b, _ := json.Marshal(t)
			out[prefix] = string(b)
		}
	}
	walk("", v)
	return out
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

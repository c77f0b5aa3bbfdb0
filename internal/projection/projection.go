// Package projection is the runtime every read-model projector shares: it consumes the relay's
// event records from Kafka and hands them, decoded, to a projector's Handler. This file holds the
// contract between the runtime and a handler; loop.go is the consume loop.
package projection

import (
	"context"
	"fmt"

	"github.com/orders-oss/orders/pkg/events"
)

// Event is one consumed record: the envelope, its decoded payload and where it was read from.
type Event struct {
	Envelope  events.Envelope
	Payload   events.Payload
	Topic     string
	Partition int32
	Offset    int64
}

// Result is what a handler reports for one batch.
type Result struct {
	// Applied counts events that changed the read model.
	Applied int
	// Duplicates counts events at or below the order's applied version (redeliveries).
	Duplicates int
	// Failed maps an order id to why its events were not applied (a gap, a refusal by the store); the
	// runtime parks those orders. Other orders of the batch are unaffected.
	Failed map[string]error
}

// Position is the next offset to read on a topic partition.
type Position struct {
	Topic     string
	Partition int32
	Next      int64
}

// Handler is implemented by a projector. Apply must be idempotent by (order id, version): the
// runtime delivers at least once, so a redelivered event must change nothing. ends are the positions
// after the batch on each partition it was read from (nil for a replay of parked events); a handler
// with transactions records them with its write. An error fails the whole batch (it is read again);
// an order that cannot be applied goes into Result.Failed instead, with none of this batch's events
// of that order applied (the runtime parks all of them, in order).
type Handler interface {
	Apply(ctx context.Context, batch []Event, ends []Position) (Result, error)
}

// Step is what a handler should do with an event given the order's applied version.
type Step int

const (
	// StepApply: the event is the next version of the order.
	StepApply Step = iota
	// StepDuplicate: the event is at or below the applied version; it changes nothing.
	StepDuplicate
	// StepGap: versions are missing before the event; applying it would corrupt the read model.
	StepGap
)

// GapError reports an event that arrived before the versions preceding it.
type GapError struct {
	OrderID string
	Applied int64
	Version int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("order %s: event version %d after applied version %d", e.OrderID, e.Version, e.Applied)
}

// Classify decides what to do with an event of the given version when the read model holds the
// order at applied (0 when the order is unknown). A gap is never applied silently: the caller parks
// the order instead, because per order the relay publishes first appearances in version order.
func Classify(applied, version int64) Step {
	switch {
	case version <= applied:
		return StepDuplicate
	case version == applied+1:
		return StepApply
	default:
		return StepGap
	}
}

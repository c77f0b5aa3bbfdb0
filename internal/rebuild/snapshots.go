package rebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/order"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/events"
)

// Snapshots are a cache of the command service's fold (internal/command): verifying them folds each
// order's events with the domain's own evolve and compares the result with every snapshot of it.

// SnapshotSource is what VerifySnapshots reads of the event store (an *eventstore.Store).
type SnapshotSource interface {
	SnapshotPage(ctx context.Context, afterStream string, afterVersion int64, limit int) ([]eventstore.Snapshot, error)
	Read(ctx context.Context, streamID string, r eventstore.Range) ([]events.Envelope, error)
}

// SnapshotKind is what is wrong with a snapshot.
type SnapshotKind string

const (
	// SnapshotDiffers: the snapshot decodes but is not the fold of its order's events up to its version.
	// Loads would start from a wrong state: drop it (ordersctl snapshots drop --order ID).
	SnapshotDiffers SnapshotKind = "differs"
	// SnapshotUndecodable: the snapshot, of this release's fold schema version, does not decode. Loads
	// ignore it (and replace it).
	SnapshotUndecodable SnapshotKind = "undecodable"
	// SnapshotBeyondHistory: the order has no event of the snapshot's version.
	SnapshotBeyondHistory SnapshotKind = "beyond_history"
	// SnapshotEventsUnreadable: an event of the order up to the snapshot's version cannot be decoded by
	// this release (a newer one wrote it), so the snapshot cannot be checked.
	SnapshotEventsUnreadable SnapshotKind = "events_unreadable"
	// SnapshotOtherFold: another fold schema version took the snapshot (a release before or after this
	// one). This release never uses it, so it is listed and not checked, and it is not a failure.
	SnapshotOtherFold SnapshotKind = "other_fold_schema"
)

// SnapshotProblem is one snapshot that is not verified equal to the fold of its events.
type SnapshotProblem struct {
	Kind              SnapshotKind `json:"kind"`
	OrderID           string       `json:"order_id"`
	Version           int64        `json:"version"`
	FoldSchemaVersion int          `json:"fold_schema_version"`
	Detail            string       `json:"detail,omitempty"`
	// For SnapshotDiffers, the snapshot's state and the fold's, side by side.
	Snapshot json.RawMessage `json:"snapshot,omitempty"`
	Fold     json.RawMessage `json:"fold,omitempty"`
}

// SnapshotReport is the outcome of VerifySnapshots.
type SnapshotReport struct {
	// FoldSchemaVersion is this release's (order.FoldSchemaVersion).
	FoldSchemaVersion int `json:"fold_schema_version"`
	Snapshots         int `json:"snapshots"`
	Orders            int `json:"orders"`
	// Verified counts the snapshots equal to the fold of their events.
	Verified int `json:"verified"`
	// OtherFold counts the snapshots of another fold schema version (not checked, not failures).
	OtherFold int `json:"other_fold_schema"`
	// Failures counts the other problems: snapshots that differ, do not decode, or cannot be checked.
	Failures int               `json:"failures"`
	Problems []SnapshotProblem `json:"problems"`
}

// OK reports whether every snapshot this release would use equals the fold of its events.
func (r *SnapshotReport) OK() bool { return r.Failures == 0 }

func (r *SnapshotReport) add(p SnapshotProblem) {
	if p.Kind == SnapshotOtherFold {
		r.OtherFold++
	} else {
		r.Failures++
	}
	r.Problems = append(r.Problems, p)
}

// VerifySnapshots checks every snapshot against the fold of its order's events up to its version. Each
// order's events are read once, in version order, as far as its last snapshot. An error means the
// check could not be made, not that a snapshot is wrong.
func VerifySnapshots(ctx context.Context, src SnapshotSource, keys projection.Keys, p Progress) (SnapshotReport, error) {
	p = orDiscard(p)
	r := SnapshotReport{FoldSchemaVersion: order.FoldSchemaVersion, Problems: []SnapshotProblem{}}
	p.Phase(PhaseSnapshots, 0)
	var (
		stream     string      // the order being folded
		st         order.State // its fold so far
		unreadable error       // why its events cannot be folded further
	)
	afterStream, afterVersion := "", int64(0)
	for {
		page, err := src.SnapshotPage(ctx, afterStream, afterVersion, 500)
		if err != nil {
			return r, err
		}
		for _, snap := range page {
			if snap.StreamID != stream {
				stream, st, unreadable = snap.StreamID, order.State{}, nil
				r.Orders++
			}
			r.Snapshots++
			if unreadable == nil && st.Version < snap.Version {
				st, err = foldUpTo(ctx, src, st, snap.StreamID, snap.Version)
				if errors.Is(err, errUnreadable) {
					unreadable, err = err, nil
				}
				if err != nil {
					return r, err
				}
			}
			if prob, ok := checkSnapshot(ctx, keys, snap, st, unreadable); !ok {
				r.add(prob)
			} else {
				r.Verified++
			}
		}
		p.Advance(int64(r.Snapshots))
		if len(page) < 500 {
			return r, nil
		}
		last := page[len(page)-1]
		afterStream, afterVersion = last.StreamID, last.Version
	}
}

// errUnreadable wraps the error of an event this release cannot decode.
var errUnreadable = errors.New("cannot read the order's events")

// foldUpTo folds the order's events after st's version up to version to onto st. An event it cannot
// decode ends the fold there with an error wrapping errUnreadable.
func foldUpTo(ctx context.Context, src SnapshotSource, st order.State, id string, to int64) (order.State, error) {
	evs, err := src.Read(ctx, id, eventstore.Range{After: st.Version, To: to})
	if err != nil {
		return st, err
	}
	for _, e := range evs {
		p, err := events.DecodeEnvelope(e)
		if err != nil {
			return st, fmt.Errorf("%w: event %d: %w", errUnreadable, e.Version, err)
		}
		st = order.Evolve(st, e, p)
	}
	return st, nil
}

// checkSnapshot compares a snapshot with the fold of its order up to its version. A snapshot holds the
// personal data sealed where the fold has it in plain text (events written before it was sealed): they
// are compared opened, with keys. The states in a report have their personal data left out.
func checkSnapshot(ctx context.Context, keys projection.Keys, snap eventstore.Snapshot, fold order.State, unreadable error) (SnapshotProblem, bool) {
	p := SnapshotProblem{OrderID: snap.StreamID, Version: snap.Version, FoldSchemaVersion: snap.FoldSchemaVersion}
	if snap.FoldSchemaVersion != order.FoldSchemaVersion {
		p.Kind, p.Detail = SnapshotOtherFold, fmt.Sprintf("taken by fold schema version %d; this release folds version %d and never uses it", snap.FoldSchemaVersion, order.FoldSchemaVersion)
		return p, false
	}
	if unreadable != nil && fold.Version < snap.Version {
		p.Kind, p.Detail = SnapshotEventsUnreadable, unreadable.Error()
		return p, false
	}
	if fold.Version != snap.Version {
		p.Kind, p.Detail = SnapshotBeyondHistory, fmt.Sprintf("the order's events end at version %d", fold.Version)
		return p, false
	}
	got, err := order.DecodeState(snap.State)
	if err != nil {
		p.Kind, p.Detail = SnapshotUndecodable, err.Error()
		return p, false
	}
	have, err1 := order.EncodeState(got)
	want, err2 := order.EncodeState(fold)
	if err1 == nil && err2 == nil && bytes.Equal(have, want) {
		return p, true
	}
	if err1 == nil && err2 == nil && fold.HasPlain() && keys != nil {
		a, errA := viewsOf(ctx, keys, map[string]order.State{got.ID: got}, []string{got.ID})
		b, errB := viewsOf(ctx, keys, map[string]order.State{fold.ID: fold}, []string{fold.ID})
		if errA == nil && errB == nil && reflect.DeepEqual(a, b) {
			return p, true
		}
	}
	have, _ = order.EncodeState(got.Redact())
	want, _ = order.EncodeState(fold.Redact())
	p.Kind, p.Detail, p.Snapshot, p.Fold = SnapshotDiffers, "the snapshot is not the fold of the order's events (personal data left out)", have, want
	return p, false
}

// DropSnapshots deletes the snapshots of an order, or of every order when orderID is "", and returns
// how many: loads fold from the events until new ones are taken.
func DropSnapshots(ctx context.Context, c Clients, orderID string) (int64, error) {
	if c.Pool == nil {
		return 0, fmt.Errorf("drop snapshots: no Postgres pool (the event store)")
	}
	return eventstore.New(c.Pool).DropSnapshots(ctx, orderID)
}

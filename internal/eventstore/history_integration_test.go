//go:build integration

package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/pkg/events"
)

func TestReadSelectsARangeOfHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	id := uuid.NewString()
	var appended []events.Envelope
	var between []time.Time // a moment after each event was recorded, before the next
	for i := 1; i <= 5; i++ {
		got, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: int64(i - 1), Events: []eventstore.NewEvent{event(i)}})
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, got...)
		time.Sleep(2 * time.Millisecond)
		var now time.Time
		if err := pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
			t.Fatal(err)
		}
		between = append(between, now)
		time.Sleep(2 * time.Millisecond)
	}
	versions := func(evs []events.Envelope) []int64 {
		var out []int64
		for _, e := range evs {
			out = append(out, e.Version)
		}
		return out
	}
	tests := []struct {
		r    eventstore.Range
		want []int64
	}{
		{eventstore.Range{}, []int64{1, 2, 3, 4, 5}},
		{eventstore.Range{After: 2}, []int64{3, 4, 5}},
		{eventstore.Range{To: 3}, []int64{1, 2, 3}},
		{eventstore.Range{After: 1, To: 4, Limit: 2}, []int64{2, 3}},
		{eventstore.Range{Until: between[1]}, []int64{1, 2}},
		{eventstore.Range{Until: appended[2].RecordedAt}, []int64{1, 2, 3}}, // at or before: inclusive
		{eventstore.Range{Until: appended[0].RecordedAt.Add(-time.Microsecond)}, nil},
		{eventstore.Range{After: 1, Until: between[3], To: 3}, []int64{2, 3}},
		{eventstore.Range{To: 99}, []int64{1, 2, 3, 4, 5}},
	}
	for _, tt := range tests {
		got, err := store.Read(ctx, id, tt.r)
		if err != nil || fmt.Sprint(versions(got)) != fmt.Sprint(tt.want) {
			t.Errorf("Read(%+v) = versions %v, %v; want %v", tt.r, versions(got), err, tt.want)
		}
	}
	// ReadForFold: the same events, with what a fold uses.
	for _, r := range [][2]int64{{0, 0}, {2, 4}, {4, 99}, {5, 0}} {
		lean, err := store.ReadForFold(ctx, strings.ToUpper(id), r[0], r[1])
		full, _ := store.Read(ctx, id, eventstore.Range{After: r[0], To: r[1]})
		if err != nil || len(lean) != len(full) {
			t.Fatalf("ReadForFold(%v) = %d events, %v; want %d", r, len(lean), err, len(full))
		}
		for i, e := range lean {
			f := full[i]
			if e.OrderID != id || e.Version != f.Version || e.Type != f.Type || e.SchemaVersion != f.SchemaVersion ||
				string(e.Data) != string(f.Data) || !e.OccurredAt.Equal(f.OccurredAt) || e.OccurredAt.Location() != time.UTC {
				t.Errorf("ReadForFold event %+v, want the fold's part of %+v", e, f)
			}
		}
	}
	for i, at := range between {
		if v, err := store.VersionAt(ctx, id, at); err != nil || v != int64(i+1) {
			t.Errorf("VersionAt(after event %d) = %d, %v; want %d", i+1, v, err, i+1)
		}
	}
	if v, err := store.VersionAt(ctx, id, appended[0].RecordedAt.Add(-time.Microsecond)); err != nil || v != 0 {
		t.Errorf("VersionAt(before the first event) = %d, %v; want 0", v, err)
	}
	if v, err := store.VersionAt(ctx, id, appended[3].RecordedAt); err != nil || v != 4 {
		t.Errorf("VersionAt(the recorded_at of event 4) = %d, %v; want 4 (at or before)", v, err)
	}
	for _, unknown := range []string{"nope", uuid.NewString()} {
		if evs, err := store.Read(ctx, unknown, eventstore.Range{}); err != nil || len(evs) != 0 {
			t.Errorf("Read(%q) = %d events, %v; want none", unknown, len(evs), err)
		}
		if v, err := store.VersionAt(ctx, unknown, time.Now()); err != nil || v != 0 {
			t.Errorf("VersionAt(%q) = %d, %v; want 0", unknown, v, err)
		}
	}
}

func TestSnapshotsSaveReplaceFindAndDrop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	a, b := uuid.NewString(), uuid.NewString()
	save := func(id string, version int64, fold int, state string) {
		t.Helper()
		if err := store.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: id, Version: version, FoldSchemaVersion: fold, State: json.RawMessage(state)}); err != nil {
			t.Fatal(err)
		}
	}
	save(a, 100, 1, `{"v": 100}`)
	save(a, 200, 1, `{"v": 200}`)
	save(a, 300, 7, `{"v": 300}`)
	save(b, 100, 1, `{"v": "b"}`)
	latest := func(id string, atOrBelow int64) *eventstore.Snapshot {
		t.Helper()
		snap, err := store.LatestSnapshot(ctx, id, atOrBelow)
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	for _, tt := range []struct {
		atOrBelow, want int64
	}{{0, 300}, {299, 200}, {200, 200}, {150, 100}, {99, 0}} {
		snap := latest(a, tt.atOrBelow)
		if got := int64(0); snap != nil {
			got = snap.Version
			if got != tt.want {
				t.Errorf("LatestSnapshot(a, %d) = version %d, want %d", tt.atOrBelow, got, tt.want)
			}
		} else if tt.want != 0 {
			t.Errorf("LatestSnapshot(a, %d) = none, want version %d", tt.atOrBelow, tt.want)
		}
	}
	if snap := latest(a, 0); snap.FoldSchemaVersion != 7 || snap.StreamID != a || snap.TakenAt.IsZero() || string(snap.State) != `{"v": 300}` {
		t.Errorf("LatestSnapshot(a) = %+v, want the one of fold schema version 7, as saved", snap)
	}
	// A fresh snapshot replaces the one of another fold schema version at the same version.
	save(a, 300, 1, `{"v": "fresh"}`)
	if snap := latest(a, 0); snap.FoldSchemaVersion != 1 || string(snap.State) != `{"v": "fresh"}` {
		t.Errorf("after a replacement LatestSnapshot(a) = %+v", snap)
	}
	if snap := latest(uuid.NewString(), 0); snap != nil {
		t.Errorf("LatestSnapshot(unknown) = %+v, want nil", snap)
	}
	// Every snapshot, page by page.
	var all []string
	for afterStream, afterVersion := "", int64(0); ; {
		page, err := store.SnapshotPage(ctx, afterStream, afterVersion, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, s := range page {
			all = append(all, fmt.Sprintf("%s/%d", s.StreamID, s.Version))
		}
		last := page[len(page)-1]
		afterStream, afterVersion = last.StreamID, last.Version
	}
	if len(all) != 4 {
		t.Errorf("SnapshotPage pages hold %v, want the 4 snapshots", all)
	}
	if n, err := store.DropSnapshots(ctx, b); err != nil || n != 1 || latest(b, 0) != nil || latest(a, 0) == nil {
		t.Errorf("DropSnapshots(b) = %d, %v; want 1, and a's kept", n, err)
	}
	if n, err := store.DropSnapshots(ctx, ""); err != nil || n != 3 || latest(a, 0) != nil {
		t.Errorf("DropSnapshots(all) = %d, %v; want 3", n, err)
	}
	if _, err := store.DropSnapshots(ctx, "nope"); err == nil {
		t.Error("DropSnapshots(not a UUID) = nil error")
	}
	if err := store.SaveSnapshot(ctx, eventstore.Snapshot{StreamID: a, Version: 0, State: json.RawMessage(`{}`)}); err == nil {
		t.Error("SaveSnapshot(version 0) = nil error")
	}
}

func TestUpdateWithRetriesOnItsOwnLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	id := uuid.NewString()
	if _, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, Events: []eventstore.NewEvent{event(1)}}); err != nil {
		t.Fatal(err)
	}
	calls := 0
	appended, err := store.UpdateWith(ctx, id, 3, func(ctx context.Context) (int64, []eventstore.NewEvent, *eventstore.IdempotencyRecord, error) {
		calls++
		if calls == 1 { // decides on version 1, then another command appends version 2 first
			_, err := store.Append(ctx, eventstore.AppendRequest{StreamID: id, ExpectedVersion: 1, Events: []eventstore.NewEvent{event(2)}})
			return 1, []eventstore.NewEvent{event(3)}, nil, err
		}
		h, err := store.Load(ctx, id)
		return int64(len(h)), []eventstore.NewEvent{event(3)}, nil, err
	})
	if err != nil || calls != 2 || len(appended) != 1 || appended[0].Version != 3 {
		t.Fatalf("UpdateWith = %+v, %v after %d attempts; want version 3 after 2", appended, err, calls)
	}
	// Never retried with 0 retries; a refusal or no events append nothing.
	_, err = store.UpdateWith(ctx, id, 0, func(context.Context) (int64, []eventstore.NewEvent, *eventstore.IdempotencyRecord, error) {
		return 1, []eventstore.NewEvent{event(4)}, nil, nil
	})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Errorf("UpdateWith(stale, no retries) = %v, want ErrVersionConflict", err)
	}
	refused := errors.New("refused")
	if got, err := store.UpdateWith(ctx, id, 3, func(context.Context) (int64, []eventstore.NewEvent, *eventstore.IdempotencyRecord, error) {
		return 3, nil, nil, refused
	}); got != nil || err != refused {
		t.Errorf("UpdateWith(refusal) = %v, %v", got, err)
	}
	if h, _ := store.Load(ctx, id); len(h) != 3 {
		t.Errorf("%d events, want 3", len(h))
	}
}

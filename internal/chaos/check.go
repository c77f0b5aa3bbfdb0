package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/pkg/events"
)

// The promises the checker holds the system to (docs/relay.md, docs/architecture.md).
const (
	PromiseOK        = "every acknowledged command has exactly one event"
	PromiseFailed    = "a refused or unsent command has no event"
	PromiseUnknown   = "a command of unknown outcome has at most one event"
	PromiseUnique    = "every unique value is recorded at most once"
	PromiseTopic     = "every stored event is in the topic, keyed by its order, first appearances in version order"
	PromiseModels    = "both read models equal the fold of the event store"
	PromiseParking   = "a poison record parks its order in both projectors, and only that order"
	PromiseLate      = "a late-committing transaction is published and projected"
	PromiseRecovery  = "recovery within the target"
	PromiseSettled   = "the pipeline catches up after the faults"
	PromiseWorkload  = "the workload ran"
	maxDetailsPerKey = 10
)

// Evidence is what the checker looks at after a scenario, once the pipeline has caught up.
type Evidence struct {
	// Prefix starts every command id of the run: an event that carries it as its correlation id must
	// belong to a command of Commands.
	Prefix   string
	Commands []Command // every command of the run so far
	Scenario string    // whose commands are counted ("" for all)
	Store    []events.Envelope
	Topic    []TopicRecord
	Models   []ModelEvidence
	// Poisoned holds this run's poisoned orders and the version the read models must hold them at.
	Poisoned map[string]int64
	Late     []LateRecord
}

// Finding is one broken promise.
type Finding struct {
	Promise string
	Detail  string
}

// TopicStats describe the topic as the checker read it.
type TopicStats struct {
	Records     int // all records
	Events      int // distinct events among them
	Redelivered int // records of an event already in the topic (at least once: allowed)
	Poison      int // poison records the suite produced
	Missing     int // stored events not in the topic
	OutOfOrder  int // orders whose first appearances are not in version order
}

// Verdict is the checker's answer.
type Verdict struct {
	Commands       map[Outcome]int
	UnknownApplied int // unknown outcomes whose event is in the store (the rest recorded nothing)
	Lost           int // acknowledged commands without their event
	Duplicated     int // commands with more than one event, or unique values recorded more than once
	Phantom        int // refused or unsent commands with an event, and events of the run no command sent
	StoreEvents    int
	Topic          TopicStats
	Findings       []Finding
}

// OK reports whether every promise held.
func (v Verdict) OK() bool { return len(v.Findings) == 0 }

type findings struct {
	list   []Finding
	counts map[string]int
}

func (f *findings) add(promise, format string, args ...any) {
	if f.counts == nil {
		f.counts = map[string]int{}
	}
	f.counts[promise]++
	if f.counts[promise] <= maxDetailsPerKey {
		f.list = append(f.list, Finding{promise, fmt.Sprintf(format, args...)})
	}
}

func (f *findings) done() []Finding {
	for _, p := range slices.Sorted(maps.Keys(f.counts)) {
		if n := f.counts[p]; n > maxDetailsPerKey {
			f.list = append(f.list, Finding{p, fmt.Sprintf("... and %d more", n-maxDetailsPerKey)})
		}
	}
	return f.list
}

// Check proves the promises on the evidence.
func Check(e Evidence) Verdict {
	var f findings
	v := Verdict{Commands: map[Outcome]int{}, StoreEvents: len(e.Store)}
	checkCommands(e, &v, &f)
	v.Topic = checkTopic(e.Store, e.Topic, &f)
	checkModels(e.Models, e.Poisoned, &f)
	for _, l := range e.Late {
		if l.Overtaken <= 0 {
			f.add(PromiseLate, "the late commit of order %s (position %d) was not overtaken by later commits: the fault proved nothing", l.OrderID, l.Position)
		}
	}
	v.Findings = f.done()
	return v
}

// Tokens returns the unique values an event's data carries (skus, payment reference, tracking
// number, and a cancellation reason written in plain text).
func Tokens(e events.Envelope) []string {
	p, err := events.DecodeEnvelope(e)
	if err != nil {
		return nil
	}
	switch p := p.(type) {
	case events.OrderPlaced:
		out := make([]string, len(p.Items))
		for i, it := range p.Items {
			out[i] = it.SKU
		}
		return out
	case events.OrderItemAdded:
		return []string{p.Item.SKU}
	case events.PaymentConfirmed:
		return []string{p.Reference}
	case events.OrderShipped:
		out := make([]string, len(p.Parcels))
		for i, parcel := range p.Parcels {
			out[i] = parcel.TrackingNumber
		}
		return out
	case events.OrderCancelled:
		// The reason is personal data, sealed since OrderCancelled v2 (docs/privacy.md): a cancellation
		// is found by its command's correlation id alone, unless it was written in plain text.
		if reason, ok := p.Reason.Plain(); ok {
			return []string{reason}
		}
	}
	return nil
}

func checkCommands(e Evidence, v *Verdict, f *findings) {
	tokens := map[string]bool{}
	known := map[string]bool{}
	for _, c := range e.Commands {
		known[c.ID] = true
		if c.Token != "" {
			tokens[c.Token] = true
		}
	}
	byCommand := map[string][]events.Envelope{}
	recorded := map[string]int{}
	for _, ev := range e.Store {
		if id := ev.Metadata.CorrelationID; e.Prefix != "" && strings.HasPrefix(id, e.Prefix) {
			byCommand[id] = append(byCommand[id], ev)
		}
		for _, t := range Tokens(ev) {
			if tokens[t] {
				recorded[t]++
			}
		}
	}
	for id, evs := range byCommand {
		if !known[id] {
			v.Phantom += len(evs)
			f.add(PromiseFailed, "event %s of order %s (%s) carries the id of a command the workload never sent (%s)", evs[0].EventID, evs[0].OrderID, evs[0].Type, id)
		}
	}
	for _, c := range e.Commands {
		if e.Scenario != "" && c.Scenario != e.Scenario {
			continue
		}
		v.Commands[c.Outcome]++
		evs := byCommand[c.ID]
		duplicated := len(evs) > 1
		switch c.Outcome {
		case OK:
			switch {
			case len(evs) == 0:
				v.Lost++
				f.add(PromiseOK, "%s %s of order %s answered %d but recorded no event (lost)", c.Kind, c.ID, c.OrderID, c.Status)
			case len(evs) > 1:
				f.add(PromiseOK, "%s %s of order %s recorded %d events (duplicated)", c.Kind, c.ID, c.OrderID, len(evs))
			default:
				if why := wrongEffect(c, evs[0]); why != "" {
					f.add(PromiseOK, "%s %s: %s", c.Kind, c.ID, why)
				}
			}
		case Failed, Refused:
			if len(evs) > 0 {
				v.Phantom += len(evs)
				f.add(PromiseFailed, "%s %s of order %s was %s (%d %s) but recorded %d event(s)", c.Kind, c.ID, c.OrderID, c.Outcome, c.Status, c.Error, len(evs))
			}
		case Unknown:
			switch {
			case len(evs) == 1:
				v.UnknownApplied++
				if why := wrongEffect(c, evs[0]); why != "" {
					f.add(PromiseUnknown, "%s %s: %s", c.Kind, c.ID, why)
				}
			case len(evs) > 1:
				f.add(PromiseUnknown, "%s %s of order %s (unknown outcome) recorded %d events", c.Kind, c.ID, c.OrderID, len(evs))
			}
		}
		if c.Token != "" && recorded[c.Token] > 1 {
			if !duplicated {
				f.add(PromiseUnique, "%s %s: its unique value %q is in %d events", c.Kind, c.ID, c.Token, recorded[c.Token])
			}
			duplicated = true
		}
		if duplicated {
			v.Duplicated++
		}
	}
	if v.Commands[OK] == 0 {
		f.add(PromiseWorkload, "no command succeeded: the checks above prove nothing")
	}
}

// wrongEffect says how an acknowledged command's one event is not what it asked for ("" if it is).
func wrongEffect(c Command, ev events.Envelope) string {
	if want := c.Kind.EventType(); ev.Type != want {
		return fmt.Sprintf("recorded %s, want %s", ev.Type, want)
	}
	if c.OrderID != "" && ev.OrderID != c.OrderID {
		return fmt.Sprintf("recorded on order %s, want %s", ev.OrderID, c.OrderID)
	}
	// A cancellation's reason is sealed personal data (OrderCancelled v2): its event is the command's by
	// type, order and correlation id, but its unique value cannot be read back here.
	if c.Token != "" && !(c.Kind == Cancel && sealedReason(ev)) && !slices.Contains(Tokens(ev), c.Token) {
		return fmt.Sprintf("its event %s does not carry its unique value %q", ev.EventID, c.Token)
	}
	return ""
}

// CountTopic counts a topic's records, distinct events, redeliveries and poison records.
func CountTopic(topic []TopicRecord) TopicStats {
	st := TopicStats{Records: len(topic)}
	seen := map[string]bool{}
	for _, r := range topic {
		switch {
		case r.Poison:
			st.Poison++
		case r.EventID == "":
		case seen[r.EventID]:
			st.Redelivered++
		default:
			seen[r.EventID] = true
		}
	}
	st.Events = len(seen)
	return st
}

func checkTopic(store []events.Envelope, topic []TopicRecord, f *findings) TopicStats {
	st := CountTopic(topic)
	recs := slices.Clone(topic)
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].Partition != recs[j].Partition {
			return recs[i].Partition < recs[j].Partition
		}
		return recs[i].Offset < recs[j].Offset
	})
	stored := make(map[string]events.Envelope, len(store))
	for _, e := range store {
		stored[e.EventID.String()] = e
	}
	first := map[string]TopicRecord{}
	partitionOf := map[string]int32{}
	for _, r := range recs {
		if p, ok := partitionOf[r.Key]; ok && p != r.Partition {
			f.add(PromiseTopic, "records keyed %s are in partitions %d and %d", r.Key, p, r.Partition)
		}
		partitionOf[r.Key] = r.Partition
		switch {
		case r.Poison:
			continue
		case r.DecodeErr != "":
			f.add(PromiseTopic, "record %d/%d (key %s) is not an event: %s", r.Partition, r.Offset, r.Key, r.DecodeErr)
			continue
		}
		if r.Key != r.OrderID {
			f.add(PromiseTopic, "record %d/%d of order %s is keyed %q", r.Partition, r.Offset, r.OrderID, r.Key)
		}
		if _, seen := first[r.EventID]; seen {
			continue // redelivered (at least once: allowed)
		}
		first[r.EventID] = r
		e, ok := stored[r.EventID]
		switch {
		case !ok:
			f.add(PromiseTopic, "record %d/%d holds event %s, which the store does not have", r.Partition, r.Offset, r.EventID)
		case e.OrderID != r.OrderID || e.Version != r.Version || e.Type != r.Type:
			f.add(PromiseTopic, "record %d/%d says event %s is %s v%d of %s; the store says %s v%d of %s",
				r.Partition, r.Offset, r.EventID, r.Type, r.Version, r.OrderID, e.Type, e.Version, e.OrderID)
		}
	}
	byOrder := map[string][]events.Envelope{}
	for _, e := range store {
		if _, ok := first[e.EventID.String()]; !ok {
			st.Missing++
			f.add(PromiseTopic, "event %s (%s v%d of order %s, position %d) is not in the topic (lost)", e.EventID, e.Type, e.Version, e.OrderID, e.Position)
			continue
		}
		byOrder[e.OrderID] = append(byOrder[e.OrderID], e)
	}
	for _, id := range slices.Sorted(maps.Keys(byOrder)) {
		evs := byOrder[id]
		sort.Slice(evs, func(i, j int) bool { return evs[i].Version < evs[j].Version })
		for i := 1; i < len(evs); i++ {
			a, b := first[evs[i-1].EventID.String()], first[evs[i].EventID.String()]
			if a.Partition != b.Partition || a.Offset >= b.Offset {
				st.OutOfOrder++
				f.add(PromiseTopic, "order %s: version %d first appears at %d/%d, after version %d at %d/%d",
					id, evs[i-1].Version, a.Partition, a.Offset, evs[i].Version, b.Partition, b.Offset)
				break
			}
		}
	}
	return st
}

func checkModels(models []ModelEvidence, poisoned map[string]int64, f *findings) {
	for _, m := range models {
		if m.Err != nil {
			f.add(PromiseModels, "%s: could not compare with the store: %v", m.Name, m.Err)
			continue
		}
		for _, d := range m.Report.Differences {
			want, ours := poisoned[d.OrderID]
			switch {
			case ours && (d.Kind == rebuild.Version && d.ModelVersion == want || d.Kind == rebuild.Missing && want == 0):
				// held at the poison, as it must be
			case ours:
				f.add(PromiseParking, "%s: poisoned order %s is %s (read model version %d, store %d); it must stay at version %d",
					m.Name, d.OrderID, d.Kind, d.ModelVersion, d.StoreVersion, want)
			case m.Parked[d.OrderID].Poison:
				// poisoned by an earlier run: held back behind its poison record
			default:
				f.add(PromiseModels, "%s: order %s differs from the fold of the store: %s", m.Name, d.OrderID, describe(d))
			}
		}
		for _, id := range slices.Sorted(maps.Keys(poisoned)) {
			if p, ok := m.Parked[id]; !ok || !p.Poison {
				f.add(PromiseParking, "%s: poisoned order %s is not parked behind its poison record", m.Name, id)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(m.Parked)) {
			if p := m.Parked[id]; !p.Poison {
				f.add(PromiseParking, "%s: order %s is parked (%d records): %s", m.Name, id, p.Records, p.Error)
			}
		}
		if m.ParkedCount > len(m.Parked) {
			f.add(PromiseParking, "%s: %d parked orders are not orders of the store", m.Name, m.ParkedCount-len(m.Parked))
		}
	}
}

func describe(d rebuild.Difference) string {
	switch d.Kind {
	case rebuild.Missing:
		return fmt.Sprintf("missing (store version %d)", d.StoreVersion)
	case rebuild.Extra:
		return "extra (the store has no such order)"
	case rebuild.Version:
		return fmt.Sprintf("at version %d, store %d", d.ModelVersion, d.StoreVersion)
	}
	a, _ := json.Marshal(d.Model)
	b, _ := json.Marshal(d.Store)
	return fmt.Sprintf("other fields at version %d: read model %s, store %s", d.StoreVersion, a, b)
}

// sealedReason says whether ev is a cancellation whose reason is sealed.
func sealedReason(ev events.Envelope) bool {
	p, err := events.DecodeEnvelope(ev)
	if err != nil {
		return false
	}
	c, ok := p.(events.OrderCancelled)
	if !ok {
		return false
	}
	_, sealed := c.Reason.Sealed()
	return sealed
}

package rebuild

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// PartitionStart is where a partition of the events topic starts now (its log start offset). Anything
// above 0 means records were deleted (by retention or by hand): a replay from there misses them.
type PartitionStart struct {
	Partition int32  `json:"partition"`
	Start     int64  `json:"start_offset"`
	Error     string `json:"error,omitempty"` // the broker could not say
}

// History is where each partition of the events topic starts.
type History struct {
	Topic      string           `json:"topic"`
	Partitions []PartitionStart `json:"partitions"`
}

// Lost returns the partitions that no longer start at offset 0, in partition order.
func (h History) Lost() []PartitionStart {
	var lost []PartitionStart
	for _, p := range h.Partitions {
		if p.Error == "" && p.Start > 0 {
			lost = append(lost, p)
		}
	}
	return lost
}

// Complete reports whether every partition still starts at offset 0 (and none failed to answer).
func (h History) Complete() bool {
	for _, p := range h.Partitions {
		if p.Error != "" || p.Start > 0 {
			return false
		}
	}
	return true
}

// DescribeLost words the lost partitions: "partition 0 starts at offset 12, partition 2 ...".
func DescribeLost(lost []PartitionStart) string {
	parts := make([]string, len(lost))
	for i, p := range lost {
		parts[i] = fmt.Sprintf("partition %d starts at offset %d", p.Partition, p.Start)
	}
	return strings.Join(parts, ", ")
}

// ReadHistory lists where each partition of topic starts.
func ReadHistory(ctx context.Context, adm *kadm.Client, topic string) (History, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return History{}, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	return historyOf(topic, starts), nil
}

func historyOf(topic string, starts kadm.ListedOffsets) History {
	h := History{Topic: topic, Partitions: []PartitionStart{}}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		p := PartitionStart{Partition: o.Partition, Start: o.Offset}
		if o.Err != nil {
			p.Error = o.Err.Error()
		}
		h.Partitions = append(h.Partitions, p)
	})
	sort.Slice(h.Partitions, func(i, j int) bool { return h.Partitions[i].Partition < h.Partitions[j].Partition })
	return h
}

// HistoryLostError: the rebuild refused because the topic no longer starts at offset 0 on some
// partition and backfill was not asked for. The way out is a rebuild with backfill (fold the event
// store first), or republishing the history to a new topic; the caller words it in its own terms.
type HistoryLostError struct {
	Topic string
	Lost  []PartitionStart
}

func (e *HistoryLostError) Error() string {
	return fmt.Sprintf("refusing to rebuild: topic %s no longer starts at offset 0 (%s); a replay would silently miss the deleted events",
		e.Topic, DescribeLost(e.Lost))
}

// groupLag is the records of the topic the group has not committed yet (all of them before its
// first commit).
func groupLag(ctx context.Context, adm *kadm.Client, topic, group string) (int64, error) {
	lags, err := lag(ctx, adm, group)
	if err != nil {
		return 0, fmt.Errorf("lag of %s: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return 0, fmt.Errorf("lag of %s: no answer", group)
	}
	if err := l.Error(); err != nil {
		return 0, fmt.Errorf("lag of %s: %w", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	return lagOf(topic, starts, ends, l.Lag), nil
}

// lagOf sums, over the partitions of topic, the records between where the group stands (its commit,
// or the log start when it has none or committed below it) and the end.
func lagOf(topic string, starts, ends kadm.ListedOffsets, committed kadm.GroupLag) int64 {
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic != topic {
			return
		}
		var from int64
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			from = s.Offset
		}
		if c, ok := committed.Lookup(topic, o.Partition); ok && c.Commit.At >= 0 {
			from = max(from, c.Commit.At)
		}
		lag += max(0, o.Offset-from)
	})
	return lag
}

// topicSize is the records the topic holds now, from its start offsets to its end offsets.
func topicSize(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list start offsets: %w", err)
	}
	return lagOf(topic, starts, ends, nil), nil
}

// behindGroup reports whether group has committed less than other on some partition.
func behindGroup(ctx context.Context, adm *kadm.Client, topic, group, other string) (bool, error) {
	mine, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err
	}
	theirs, err := adm.FetchOffsets(ctx, other)
	if err != nil {
		return false, err
	}
	return behind(topic, mine, theirs), nil
}

// behind reports whether mine is below theirs on some partition of topic that theirs committed.
func behind(topic string, mine, theirs kadm.OffsetResponses) bool {
	b := false
	theirs.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic || o.Err != nil {
			return
		}
		if m, ok := mine.Lookup(topic, o.Partition); !ok || m.At < o.At {
			b = true
		}
	})
	return b
}

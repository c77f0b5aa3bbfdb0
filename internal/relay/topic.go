package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicProblem describes an events-topic setting that breaks rebuilds from offset 0.
type TopicProblem string

// EnsureTopic creates the events topic when it is missing (infinite retention, delete policy) and
// otherwise checks its configuration, returning what is unsafe about it (nothing when all is well). It
// never changes an existing topic: that is the operator's decision.
func EnsureTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, replication int16) ([]TopicProblem, error) {
	err := createTopic(ctx, adm, topic, partitions, replication)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, kerr.TopicAlreadyExists) {
		return nil, fmt.Errorf("create topic %s: %w", topic, err)
	}
	rc, err := describe(ctx, adm, topic)
	if err != nil {
		return nil, err
	}
	var problems []TopicProblem
	for _, c := range rc.Configs {
		v := c.MaybeValue()
		switch c.Key {
		case "retention.ms":
			if v != "-1" {
				problems = append(problems, TopicProblem(fmt.Sprintf("retention.ms=%s: old events will be deleted and a rebuild from offset 0 will see only part of history; set retention.ms=-1", v)))
			}
		case "retention.bytes":
			if v != "-1" && v != "" {
				problems = append(problems, TopicProblem(fmt.Sprintf("retention.bytes=%s: old events will be deleted once the partition is that large; set retention.bytes=-1", v)))
			}
		case "cleanup.policy":
			if v != "delete" {
				problems = append(problems, TopicProblem(fmt.Sprintf("cleanup.policy=%s: compaction keeps one event per order; set cleanup.policy=delete", v)))
			}
		}
	}
	return problems, nil
}

// createTopic creates topic with infinite retention and the delete policy; an existing one is
// kerr.TopicAlreadyExists.
func createTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, replication int16) error {
	retention, policy := "-1", "delete"
	res, err := adm.CreateTopic(ctx, partitions, replication, map[string]*string{"retention.ms": &retention, "cleanup.policy": &policy}, topic)
	if err == nil {
		err = res.Err
	}
	return err
}

// describe reads a topic's configuration. A topic created a moment ago (by another relay, say) may not
// be known to every broker yet: that answer is retried for a few seconds.
func describe(ctx context.Context, adm *kadm.Client, topic string) (kadm.ResourceConfig, error) {
	for attempt := 0; ; attempt++ {
		cfgs, err := adm.DescribeTopicConfigs(ctx, topic)
		var rc kadm.ResourceConfig
		if err == nil {
			rc, err = cfgs.On(topic, nil)
		}
		if err == nil {
			err = rc.Err
		}
		if err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) || attempt >= 50 {
			if err != nil {
				return rc, fmt.Errorf("describe topic %s: %w", topic, err)
			}
			return rc, nil
		}
		select {
		case <-ctx.Done():
			return rc, fmt.Errorf("describe topic %s: %w", topic, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EnsurePublicTopic creates the public topic when it is missing (records kept forever, like the events
// topic's: a consumer team may replay it from the start). An existing one is left as it is: its
// retention is the operator's and the consumers' choice, and nothing here reads it back.
func EnsurePublicTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, replication int16) error {
	if err := createTopic(ctx, adm, topic, partitions, replication); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

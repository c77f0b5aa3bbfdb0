package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	tckafka "github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var kafka = &endpoint{envVar: "KAFKA_BROKERS", start: func(ctx context.Context) (string, error) {
	c, err := tckafka.Run(ctx, "confluentinc/confluent-local:7.5.0")
	if err != nil {
		return "", err
	}
	b, err := c.Brokers(ctx)
	return strings.Join(b, ","), err
}}

// KafkaBrokers returns the seed brokers.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	return strings.Split(kafka.get(t), ",")
}

// Topic creates a topic of the test's own with the given partition count (infinite retention, like
// the events topic) and deletes it when the test ends.
func Topic(t testing.TB, partitions int32) string {
	t.Helper()
	name := Name(t)
	adm := Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retention := "-1"
	res, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{"retention.ms": &retention}, name)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("testenv: create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		if t.Failed() && keep() {
			t.Logf("testenv: kept topic %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(ctx, name); err != nil {
			t.Errorf("testenv: delete topic %s: %v", name, err)
		}
	})
	return name
}

// Admin returns a kadm client on the brokers, closed when the test ends.
func Admin(t testing.TB) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(KafkaBrokers(t)...))
	if err != nil {
		t.Fatalf("testenv: kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

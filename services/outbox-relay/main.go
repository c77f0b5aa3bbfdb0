// Command outbox-relay publishes the event store's outbox to Kafka: every committed event reaches the
// events topic, keyed by order id, in order per order, none lost, and its public counterpart (if it has
// one) the public topic orders.public.v1 in the same batch. Any number of replicas may run; one
// publishes at a time (docs/relay.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/httpserver"
	"github.com/orders-oss/orders/internal/relay"
	"github.com/orders-oss/orders/pkg/publicevents"
)

func main() { httpserver.Main("outbox-relay", run) }

type config struct {
	DatabaseURL     string
	Brokers         []string
	Topic           string
	PublicTopic     string
	Partitions      int
	Replication     int
	HTTP            httpserver.Listen
	BatchSize       int
	MaxPollInterval time.Duration
	ProduceTimeout  time.Duration
	Lease           time.Duration
	Instance        string
	IdleInTxTimeout time.Duration
	BacklogInterval time.Duration
	StandbyPoll     time.Duration
	MaxErrorBackoff time.Duration
}

func loadConfig(getenv func(string) string) (config, error) {
	r := envconfig.New(getenv)
	c := config{
		DatabaseURL:     r.Required("DATABASE_URL"),
		Brokers:         r.List("KAFKA_BROKERS", true),
		Topic:           r.String("EVENTS_TOPIC", "orders.events"),
		PublicTopic:     r.String("PUBLIC_EVENTS_TOPIC", publicevents.Topic),
		Partitions:      r.Int("EVENTS_TOPIC_PARTITIONS", 6, 1, 10_000),
		Replication:     r.Int("EVENTS_TOPIC_REPLICATION", -1, -1, 32),
		HTTP:            httpserver.ReadListen(r, ":8082"),
		BatchSize:       r.Int("RELAY_BATCH_SIZE", 5000, 1, 10_000),
		MaxPollInterval: r.Duration("RELAY_MAX_POLL_INTERVAL", 50*time.Millisecond, time.Millisecond, time.Minute),
		Lease:           r.Duration("RELAY_LEASE", relay.DefaultLease, time.Second, 10*time.Minute),
		Instance:        r.String("RELAY_INSTANCE_ID", hostname()),
		IdleInTxTimeout: r.Duration("RELAY_IDLE_IN_TX_TIMEOUT", 30*time.Second, time.Second, time.Hour),
		BacklogInterval: r.Duration("RELAY_BACKLOG_INTERVAL", 5*time.Second, 100*time.Millisecond, time.Hour),
		StandbyPoll:     r.Duration("RELAY_STANDBY_POLL", 500*time.Millisecond, 10*time.Millisecond, time.Minute),
		MaxErrorBackoff: r.Duration("RELAY_MAX_ERROR_BACKOFF", 5*time.Second, 10*time.Millisecond, 5*time.Minute),
	}
	c.ProduceTimeout = r.Duration("RELAY_PRODUCE_TIMEOUT", c.Lease/2, 100*time.Millisecond, 5*time.Minute)
	r.Check(c.Replication != 0, "EVENTS_TOPIC_REPLICATION", "must be -1 (broker default) or 1 and more")
	r.Check(c.PublicTopic != c.Topic, "PUBLIC_EVENTS_TOPIC", "must not be the events topic")
	// A leader paused or cut off past its lease must not get records out after a standby took over:
	// each batch's produce deadline ends before its lease could have expired (relay/lease.go).
	r.Check(c.ProduceTimeout <= c.Lease/2, "RELAY_PRODUCE_TIMEOUT", "must be at most half of RELAY_LEASE (%s)", c.Lease)
	return c, r.Err()
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := httpserver.Logger(stdout, "outbox-relay")
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.MaxConns = 4
	pc.ConnConfig.RuntimeParams["application_name"] = "orders-outbox-relay"
	pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = fmt.Sprint(cfg.IdleInTxTimeout.Milliseconds())
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer pool.Close()

	client, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are the default and need acks=all
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(4*cfg.BatchSize),
	)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()

	metrics := relay.NewMetrics()
	r := relay.New(relay.Config{Pool: pool, Client: client, Topic: cfg.Topic, PublicTopic: cfg.PublicTopic, BatchSize: cfg.BatchSize,
		ProduceTimeout: cfg.ProduceTimeout, Lease: cfg.Lease, Instance: cfg.Instance, Log: log, Metrics: metrics})

	// The HTTP endpoints come up first so an operator can see a relay that waits for its servers.
	topicOK := make(chan struct{})
	srv := httpserver.New(httpserver.Config{Service: "outbox-relay", Log: log, Metrics: metrics.Registry,
		Ready: func(ctx context.Context) error {
			select {
			case <-topicOK:
			default:
				return errors.New("the events topic is not checked yet (waiting for Kafka)")
			}
			var outbox bool
			if err := pool.QueryRow(ctx, "SELECT to_regclass('outbox') IS NOT NULL").Scan(&outbox); err != nil {
				return fmt.Errorf("postgres: %w", err)
			}
			if !outbox {
				return errors.New("postgres: no outbox table yet (the command service applies the migrations)")
			}
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			return nil
		}})
	return srv.RunWith(ctx, cfg.HTTP, func(ctx context.Context) error {
		// Topic: create or check, retrying while Kafka is away.
		adm := kadm.NewClient(client)
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, cfg.MaxErrorBackoff) {
			tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
			problems, err := relay.EnsureTopic(tctx, adm, cfg.Topic, int32(cfg.Partitions), int16(cfg.Replication))
			if err == nil {
				err = relay.EnsurePublicTopic(tctx, adm, cfg.PublicTopic, int32(cfg.Partitions), int16(cfg.Replication))
			}
			tcancel()
			if err == nil {
				for _, p := range problems {
					log.Error("UNSAFE EVENTS TOPIC CONFIGURATION: rebuilds from this topic would be partial", "topic", cfg.Topic, "problem", string(p))
				}
				metrics.TopicConfigBad.Set(map[bool]float64{true: 1, false: 0}[len(problems) > 0])
				close(topicOK)
				break
			}
			log.Warn("events topic not ready; retrying", "topic", cfg.Topic, "error", err.Error(), "retry_in", backoff.String())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		if err := r.WaitForOutbox(ctx, cfg.MaxErrorBackoff); err != nil {
			return nil // it only fails when ctx ends
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Add(1)
		go func() { defer wg.Done(); r.WatchBacklog(ctx, cfg.BacklogInterval) }()
		log.Info("relaying", "topic", cfg.Topic, "public_topic", cfg.PublicTopic, "batch_size", cfg.BatchSize)
		polling := relay.DefaultPolling
		polling.MaxPoll, polling.StandbyPoll, polling.MaxErrorBackoff = cfg.MaxPollInterval, cfg.StandbyPoll, cfg.MaxErrorBackoff
		err := r.Run(ctx, polling)
		if err == nil {
			log.Info("stopped")
		}
		return err
	})
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

package relay

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of one relay, on a registry of its own (so tests can run several relays in one process).
type Metrics struct {
	Registry       *prometheus.Registry
	Published      prometheus.Counter
	PublishErrors  prometheus.Counter
	Backlog        prometheus.Gauge
	OldestAge      prometheus.Gauge
	CommitToAck    prometheus.Histogram
	Leader         prometheus.Gauge
	TopicConfigBad prometheus.Gauge
}

// NewMetrics registers the relay's metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry:      prometheus.NewRegistry(),
		Published:     prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_published_total", Help: "Events published to Kafka and acknowledged."}),
		PublishErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_publish_errors_total", Help: "Batches that failed to publish (retried)."}),
		Backlog:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_outbox_backlog", Help: "Committed outbox rows not yet published."}),
		OldestAge:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_oldest_unpublished_age_seconds", Help: "Age of the oldest unpublished outbox row (0 when none)."}),
		CommitToAck: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_commit_to_ack_seconds",
			Help:    "Time from an event's commit (recorded_at) to the broker's ack.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		Leader:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_leader", Help: "1 while this relay holds the publisher lock."}),
		TopicConfigBad: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_topic_config_unsafe", Help: "1 when the events topic has finite retention or compaction (breaks rebuilds)."}),
	}
	m.Registry.MustRegister(m.Published, m.PublishErrors, m.Backlog, m.OldestAge, m.CommitToAck, m.Leader, m.TopicConfigBad)
	return m
}

package projection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/auth"
	"github.com/orders-oss/orders/internal/httpserver"
)

// Projector is what a projector's main hands the runtime: its read model's side. Run does the rest,
// the same way for every projector.
type Projector struct {
	Service string // "projector-orders"
	Config  Config
	Log     *slog.Logger
	// Waits names the read model's server while the projector starts, for /readyz ("Postgres").
	Waits string
	// Ping checks the read model's server, for /readyz.
	Ping func(ctx context.Context) error
	// Open prepares the read model once its server answers (it is retried until it succeeds or ctx
	// ends) and returns the handler and the parking.
	Open func(ctx context.Context) (Handler, Parking, error)
	// Tune, when set, adjusts the loop before it runs (gap grace, failpoints).
	Tune func(*Loop)
	// Auth authenticates the operator endpoint (replay needs the admin role); health and metrics
	// stay open.
	Auth httpserver.Auth
	// Background, when set, runs beside the consume loop until ctx ends (Run waits for it to return).
	Background func(ctx context.Context)
}

type opened struct {
	h Handler
	p Parking
}

// Run serves the projector's endpoints at once (/healthz; /readyz once it consumes, saying what it
// waits for until then; /metrics; POST /parked/{order}/replay), waits for its servers in any order,
// consumes until ctx ends (a batch begun is finished), and after a graceful stop leaves the group so
// that its partitions move at once (a crash does not leave: the restarted process, with the same
// instance id, takes them back at once).
func (p Projector) Run(ctx context.Context, listen httpserver.Listen) error {
	cfg, log := p.Config, p.Log
	client, err := kgo.NewClient(cfg.MemberOptions()...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer client.Close()
	metrics := NewMetrics()
	var live atomic.Pointer[Loop]
	srv := httpserver.New(httpserver.Config{Service: p.Service, Log: log, Metrics: metrics.Registry, Auth: p.Auth,
		Ready: func(ctx context.Context) error {
			if live.Load() == nil {
				return fmt.Errorf("starting: waiting for %s and Kafka", p.Waits)
			}
			if err := p.Ping(ctx); err != nil {
				return err
			}
			if err := client.Ping(ctx); err != nil {
				return fmt.Errorf("kafka: %w", err)
			}
			return nil
		}})
	Routes(srv.Echo, &live, auth.Require(auth.ReplayParked))
	return srv.RunWith(ctx, listen, func(ctx context.Context) error {
		if p.Background != nil {
			done := make(chan struct{})
			go func() { defer close(done); p.Background(ctx) }()
			defer func() { <-done }()
		}
		m, err := WaitFor(ctx, log, p.Waits, func() (opened, error) {
			h, parking, err := p.Open(ctx)
			return opened{h, parking}, err
		})
		if err != nil {
			return err
		}
		if _, err := WaitFor(ctx, log, "Kafka", func() (int, error) {
			return 0, CheckOffsets(ctx, kadm.NewClient(client), cfg.Topic, cfg.Group)
		}); err != nil {
			return err
		}
		loop := &Loop{Client: client, Handler: m.h, Parking: m.p, Topic: cfg.Topic, Group: cfg.Group, Log: log,
			Metrics: metrics, MaxRecords: cfg.BatchSize, LagEvery: 5 * time.Second, RetryParkedEvery: time.Minute, Trace: true}
		if p.Tune != nil {
			p.Tune(loop)
		}
		live.Store(loop)
		log.Info("projecting", "topic", cfg.Topic, "group", cfg.Group, "instance_id", cfg.InstanceID, "parked_orders", m.p.Count())
		err = loop.Run(ctx)
		client.Close()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if lerr := cfg.LeaveGroup(lctx); lerr != nil {
			log.Warn("could not leave the group; its partitions move to the other members after the session timeout", "error", lerr.Error())
		}
		if err == nil || errors.Is(err, context.Canceled) {
			log.Info("stopped")
		}
		return err
	})
}

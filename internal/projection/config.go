package projection

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
)

// Config is what every projector reads from its environment (docs/configuration.md).
type Config struct {
	Brokers []string
	Topic   string
	Group   string
	// InstanceID makes the projector a static member of its group (Kafka KIP-345): a restarted process
	// with the same id takes its partitions back at once instead of waiting for its predecessor's
	// session to expire. Replicas of one projector need distinct ids (the host name by default; the pod
	// name on Kubernetes). Empty (PROJECTOR_INSTANCE_ID=none) is dynamic membership, kept only to
	// measure what static membership buys (make chaos compares the two).
	InstanceID string
	// Session is how long a member that vanished keeps its partitions: a static member that does not
	// come back within it is replaced (its partitions go to the others).
	Session   time.Duration
	BatchSize int
}

// DynamicMembership is the PROJECTOR_INSTANCE_ID that turns static membership off: a restarted member
// then waits for its dead predecessor's session to expire (PROJECTOR_SESSION_TIMEOUT) before it gets
// partitions. Only for comparisons; never in production.
const DynamicMembership = "none"

// ReadConfig reads a projector's configuration; group is its consumer group's default name.
func ReadConfig(r *envconfig.Reader, group string) Config {
	host, _ := os.Hostname()
	instance := r.String("PROJECTOR_INSTANCE_ID", host)
	if instance == DynamicMembership {
		instance = ""
	}
	return Config{
		Brokers:    r.List("KAFKA_BROKERS", true),
		Topic:      r.String("EVENTS_TOPIC", "orders.events"),
		Group:      r.String("PROJECTOR_GROUP", group),
		InstanceID: instance,
		Session:    r.Duration("PROJECTOR_SESSION_TIMEOUT", 45*time.Second, 6*time.Second, 30*time.Minute),
		BatchSize:  r.Int("PROJECTOR_BATCH_SIZE", 5000, 1, 100000),
	}
}

// MemberOptions are the kgo options of a live projector: ConsumerOptions, static membership under
// InstanceID (when set) and the session timeout. The balancer is franz-go's default, cooperative-sticky:
// a member joining or leaving moves only the partitions that must move, and the others keep consuming.
func (c Config) MemberOptions() []kgo.Opt {
	opts := append(ConsumerOptions(c.Brokers, c.Topic, c.Group), kgo.SessionTimeout(c.Session))
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}
	return opts
}

// LeaveGroup takes the static member InstanceID out of its group, so that its partitions go to the
// other members now rather than after the session timeout. Call it after a graceful stop, once the
// consumer is closed (a static member does not leave when it closes: that is what lets a crashed one
// come back to its partitions). A new pod on Kubernetes has a new name, hence a new instance id, so
// without this every rolling deploy would stall the group for a session timeout.
func (c Config) LeaveGroup(ctx context.Context) error {
	if c.InstanceID == "" {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	res, err := kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(c.Group).InstanceIDs(c.InstanceID).Reason("graceful shutdown"))
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("leave group %s as %s: %w", c.Group, c.InstanceID, err)
	}
	return nil
}

// Command ordersbench measures the system against raw baselines taken in the same run, on the real
// servers with durable settings, and writes the figures to BENCHMARKS.md (make bench).
//
//	ordersbench write [-duration 8s] [-rounds 3] [-out BENCHMARKS.md]
//	ordersbench relay [-events 100000] [-load 15s] [-rounds 3] [-out BENCHMARKS.md]
//	ordersbench search [-events 100000] [-rounds 3] [-load 15s] [-out BENCHMARKS.md]
//	ordersbench history [-events 10000] [-every 100] [-travel 9950] [-duration 3s] [-commands 300] [-rounds 3] [-out BENCHMARKS.md]
//	ordersbench scaleout [-events 100000] [-partitions 6] [-members 1,2,3] [-rounds 3] [-quiet 0.5] [-quiet-wait 3m] [-out BENCHMARKS.md]
//
// write: POST /orders through the command API (in-process server, real Postgres) at 8 and 32 clients,
// beside raw pgx doing the same two-insert transaction (event + outbox row) in one round trip.
// relay: the outbox relay draining a backlog, beside a raw franz-go produce of the same records and the
// database-only claim rate; then the backlog and commit-to-ack latency under sustained command load.
// history: the latency of GET /orders/{id}, of time travel and of a command on a 10,000-event order, with
// snapshots and without, beside the same on a 1-event order.
// scaleout: projector-orders groups of 1, 2 and 3 members draining the same 6-partition topic, beside
// the 1-member group measured in the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/pii"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ordersbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: ordersbench write|relay|search|orders|rebuild|history|scaleout [flags]")
	}
	// ORDERSBENCH_CPUPROFILE=file writes a CPU profile of the whole run (go tool pprof).
	if path := getenv("ORDERSBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	switch args[0] {
	case "write":
		fs := flag.NewFlagSet("write", flag.ContinueOnError)
		cfg := writeConfig{}
		fs.DurationVar(&cfg.Duration, "duration", defaultDuration, "length of one measurement")
		fs.IntVar(&cfg.Rounds, "rounds", 3, "measurements per figure (the median is reported)")
		fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "file to write the figures to")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg.DatabaseURL = getenv("DATABASE_URL")
		if cfg.DatabaseURL == "" {
			return fmt.Errorf("DATABASE_URL is required (eval \"$(make -s env)\")")
		}
		return benchWrite(ctx, cfg, stdout)
	case "relay":
		fs := flag.NewFlagSet("relay", flag.ContinueOnError)
		cfg := relayConfig{}
		fs.IntVar(&cfg.Events, "events", 100_000, "backlog size to drain")
		fs.IntVar(&cfg.Batch, "batch", 5000, "relay batch size (RELAY_BATCH_SIZE)")
		fs.DurationVar(&cfg.Load, "load", 15*time.Second, "length of the sustained-load run")
		fs.IntVar(&cfg.Rounds, "rounds", 3, "drain measurements (the median is reported)")
		fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "file to write the figures to")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg.DatabaseURL = getenv("DATABASE_URL")
		cfg.Brokers = brokers(getenv)
		if cfg.DatabaseURL == "" || len(cfg.Brokers) == 0 {
			return fmt.Errorf("DATABASE_URL and KAFKA_BROKERS are required (eval \"$(make -s env)\")")
		}
		return benchRelay(ctx, cfg, stdout)
	case "history":
		fs := flag.NewFlagSet("history", flag.ContinueOnError)
		cfg := historyConfig{}
		fs.IntVar(&cfg.Events, "events", 10_000, "events of the long orders (each then gets every-1 more)")
		fs.IntVar(&cfg.Every, "every", 100, "SNAPSHOT_EVERY of the service with snapshots")
		fs.Int64Var(&cfg.Travel, "travel", 9_950, "the version time travel asks for")
		fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "the longest one measurement lasts")
		fs.IntVar(&cfg.Commands, "commands", 300, "the most commands one measurement runs")
		fs.IntVar(&cfg.Rounds, "rounds", 3, "measurements per figure")
		fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "file to write the figures to")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if cfg.Every < 1 || cfg.Travel < 1 || cfg.Travel > int64(cfg.Events) || cfg.Rounds < 1 || cfg.Commands < 1 {
			return fmt.Errorf("history: -every, -rounds and -commands must be at least 1 and -travel from 1 to -events")
		}
		cfg.DatabaseURL = getenv("DATABASE_URL")
		if cfg.DatabaseURL == "" {
			return fmt.Errorf("DATABASE_URL is required (eval \"$(make -s env)\")")
		}
		return benchHistory(ctx, cfg, stdout)
	case "scaleout":
		fs := flag.NewFlagSet("scaleout", flag.ContinueOnError)
		cfg := scaleoutConfig{}
		fs.IntVar(&cfg.Events, "events", 100_000, "events on the topic (4 per order)")
		fs.IntVar(&cfg.Partitions, "partitions", 6, "partitions of the topic (EVENTS_TOPIC_PARTITIONS)")
		members := fs.String("members", "1,2,3", "member counts to measure, the first one the baseline")
		fs.IntVar(&cfg.Rounds, "rounds", 3, "measurements per member count (the median is reported)")
		fs.Float64Var(&cfg.Quiet, "quiet", 0.5, "start each round after a second with the machine's CPU at most this share busy (0: do not wait)")
		fs.DurationVar(&cfg.QuietWait, "quiet-wait", 3*time.Minute, "the longest a round waits for a quiet second")
		fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "file to write the figures to")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var err error
		if cfg.Members, err = parseMembers(*members); err != nil {
			return err
		}
		if cfg.Events < 4 || cfg.Partitions < 1 || cfg.Rounds < 1 {
			return fmt.Errorf("scaleout: -events must be at least 4, -partitions and -rounds at least 1")
		}
		cfg.Command = "go run ./cmd/ordersbench scaleout"
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "out" {
				cfg.Command += fmt.Sprintf(" -%s %s", f.Name, f.Value)
			}
		})
		cfg.DatabaseURL, cfg.Brokers = getenv("DATABASE_URL"), brokers(getenv)
		if cfg.DatabaseURL == "" || len(cfg.Brokers) == 0 {
			return fmt.Errorf("DATABASE_URL and KAFKA_BROKERS are required (eval \"$(make -s env)\")")
		}
		return benchScaleout(ctx, cfg, stdout)
	case "search", "orders", "rebuild":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		cfg := searchConfig{}
		fs.IntVar(&cfg.Events, "events", 100_000, "events to project (4 per order)")
		fs.DurationVar(&cfg.Load, "load", 15*time.Second, "length of the steady-load freshness run")
		fs.IntVar(&cfg.Rounds, "rounds", 3, "measurements (the median is reported)")
		fs.StringVar(&cfg.Out, "out", "BENCHMARKS.md", "file to write the figures to")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg.Brokers = brokers(getenv)
		cfg.OpenSearchURL, cfg.DatabaseURL = getenv("OPENSEARCH_URL"), getenv("DATABASE_URL")
		if cfg.OpenSearchURL == "" || cfg.DatabaseURL == "" || len(cfg.Brokers) == 0 {
			return fmt.Errorf("DATABASE_URL, KAFKA_BROKERS and OPENSEARCH_URL are required (eval \"$(make -s env)\")")
		}
		switch args[0] {
		case "orders":
			return benchOrders(ctx, cfg, stdout)
		case "rebuild":
			if !flagSet(fs, "events") {
				cfg.Events = 1_000_000
			}
			if !flagSet(fs, "load") {
				cfg.Load = 5 * time.Second
			}
			return benchRebuild(ctx, cfg, stdout)
		}
		return benchSearch(ctx, cfg, stdout)
	}
	return fmt.Errorf("unknown benchmark %q (write, relay, search, orders, rebuild, history, scaleout)", args[0])
}

// brokers splits KAFKA_BROKERS.
func brokers(getenv func(string) string) []string {
	var out []string
	for _, b := range strings.Split(getenv("KAFKA_BROKERS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// benchKeys is a keyring on the benchmark's database with a master key of its own.
func benchKeys(pool *pgxpool.Pool) *pii.Keyring {
	mk, err := pii.ParseMasterKey([]byte(pii.NewMasterKeyText()))
	if err != nil {
		panic(err)
	}
	return pii.New(pool, mk, pii.Options{})
}

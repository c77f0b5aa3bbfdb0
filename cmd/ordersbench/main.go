// Command ordersbench measures the system against raw baselines taken in the same run, on the real
// servers with durable settings, and writes the figures to BENCHMARKS.md (make bench).
//
//	ordersbench write [-duration 8s] [-rounds 3] [-out BENCHMARKS.md]
//
// write: POST /orders through the command API (in-process server, real Postgres) at 8 and 32 clients,
// beside raw pgx doing the same two-insert transaction (event + outbox row) in one round trip.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
		return fmt.Errorf("usage: ordersbench write [flags]")
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
	}
	return fmt.Errorf("unknown benchmark %q (write)", args[0])
}

// Command orderschaos is the fault suite of the local stack (make chaos, make chaos-short): a workload
// of concurrent HTTP clients under kill -9, SIGSTOP, a late-committing transaction and a poison
// record, then the checks of internal/chaos. It writes the figures to a Markdown report
// (RELIABILITY.md for the full suite) and exits 1 when a promise was broken.
//
//	orderschaos [-suite full|short] [-out RELIABILITY.md] [-scenarios NAME,...] [-clients 8] [-rate 40] [-max-faults N]
//
// It reads the stack's variables (ORDERS_LOCAL_DIR, PG_PORT, KAFKA_PORT, OPENSEARCH_PORT,
// COMMAND_PORT, RELAY_PORT, ..., DATABASE_URL, KAFKA_BROKERS, OPENSEARCH_URL) and ORDERS_TOKEN, and
// acts only on the processes of that stack's pid files. Run it from the repository root, on a stack
// started with `make up`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "orderschaos:", err)
		os.Exit(1)
	}
}

// errBroken: the suite ran and some promise did not hold (the report says which).
var errBroken = errors.New("promises were broken; see the findings above")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("orderschaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", "full", "full (make chaos) or short (make chaos-short, the end of make test)")
	out := fs.String("out", "", "write the report here (Markdown); empty: $ORDERS_LOCAL_DIR/chaos/<suite>.md")
	only := fs.String("scenarios", "", "run only these scenarios of the suite (comma-separated names)")
	clients := fs.Int("clients", 8, "concurrent workload clients")
	// 40/s stays below the API's per-principal rate limit (RATE_LIMIT_RPS, 50 by default once
	// authentication is on): the workload is one principal.
	rate := fs.Float64("rate", 40, "workload commands per second, all clients together")
	maxFaults := fs.Int("max-faults", 0, "inject each fault at most this many times (0: as the suite says; for trying a scenario out)")
	as := fs.String("as", "", "the command that ran the suite, for the report (default: this program's command line)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var scenarios []chaos.Scenario
	switch *suite {
	case "full":
		scenarios = chaos.Full()
	case "short":
		scenarios = chaos.Short()
	default:
		return fmt.Errorf("-suite must be full or short, not %q", *suite)
	}
	if *only != "" {
		var picked []chaos.Scenario
		for _, name := range strings.Split(*only, ",") {
			found := false
			for _, sc := range scenarios {
				if sc.Name == strings.TrimSpace(name) {
					picked, found = append(picked, sc), true
				}
			}
			if !found {
				return fmt.Errorf("no scenario %q in the %s suite", name, *suite)
			}
		}
		scenarios = picked
	}
	if *maxFaults > 0 {
		for i := range scenarios {
			for j := range scenarios[i].Steps {
				scenarios[i].Steps[j].Count = min(scenarios[i].Steps[j].Count, *maxFaults)
			}
		}
	}

	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	st, err := chaos.ReadStack(getenv, repo)
	if err != nil {
		return err
	}
	if err := st.Ready(ctx); err != nil {
		return fmt.Errorf("the stack is not up (start it with `make up`, with the same variables):\n%w", err)
	}
	if err := os.MkdirAll(filepath.Join(st.Local, "chaos"), 0o755); err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join(st.Local, "chaos", *suite+".md")
	}
	scriptLog, err := os.OpenFile(filepath.Join(st.Local, "chaos", "scripts.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer scriptLog.Close()

	pc, err := pgxpool.ParseConfig(st.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	pc.MaxConns = 8
	pc.ConnConfig.RuntimeParams["application_name"] = "orderschaos"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.Brokers...))
	if err != nil {
		return err
	}
	defer kc.Close()
	osc, err := opensearch.NewClient(opensearch.Config{Addresses: []string{st.OpenSearchURL}})
	if err != nil {
		return fmt.Errorf("OPENSEARCH_URL: %w", err)
	}

	rec := chaos.NewRecorder()
	tokens := chaos.DefaultTokens(getenv, filepath.Join(repo, "bin", "ordersctl"))
	pipeline := &chaos.Pipeline{Pool: pool, Admin: kadm.NewClient(kc), Topic: st.Topic, Groups: st.Groups, Slack: 250 * time.Millisecond}
	env := &chaos.Env{Stack: st, Pool: pool, Kafka: kc, Pipeline: pipeline, Rec: rec, ScriptLog: scriptLog}
	runner := &chaos.Runner{Env: env, Client: chaos.NewClient(st.URL(chaos.CommandAPI), tokens, 5*time.Second), OpenSearch: osc,
		Clients: *clients, Rate: *rate, Gap: time.Second, RecoveryTimeout: 2 * time.Minute, SettleTimeout: 2 * time.Minute, Progress: stdout}

	start := time.Now()
	if err := runner.Baseline(ctx); err != nil {
		return fmt.Errorf("read the events topic: %w", err)
	}
	fmt.Fprintf(stdout, "orderschaos: %s suite, %d scenarios, run %s, stack %s, command API %s\n", *suite, len(scenarios), rec.Run, st.Local, st.URL(chaos.CommandAPI))
	var results []chaos.Result
	var abort error
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			abort = ctx.Err()
			break
		}
		res, err := runner.Run(ctx, sc)
		results = append(results, res)
		if err != nil {
			abort = err
			break
		}
	}

	// Whatever happened, leave the stack whole: no standby, static projectors, everything running.
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if env.Standby != nil {
		env.Standby.Stop()
	}
	if env.ServiceEnv != nil {
		env.ServiceEnv = nil
		_ = st.Stop(chaos.ProjectorOrders)
		_ = st.Stop(chaos.ProjectorSearch)
	}
	healthy := "the stack was left running and caught up (every service ready, outbox empty, both projectors' lag 0)"
	if err := runner.Healthy(hctx); err != nil {
		healthy = "**the stack was not healthy afterwards: " + err.Error() + "**"
		abort = errors.Join(abort, fmt.Errorf("the stack is not healthy after the suite: %w", err))
	}
	if err := dumpCommands(filepath.Join(st.Local, "chaos", "commands-"+rec.Run+".jsonl"), rec.Commands("")); err != nil {
		fmt.Fprintln(stderr, "orderschaos: keep the command log:", err)
	}

	line := "orderschaos"
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"") {
			a = strconv.Quote(a)
		}
		line += " " + a
	}
	command := *as
	if command == "" {
		command = line
	}
	info := chaos.RunInfo{Command: command, Args: line, Suite: *suite, Date: start,
		Duration: time.Since(start), Machine: machine(), Commit: commit(repo), Go: runtime.Version(), Clients: *clients,
		Rate: *rate, Token: tokens.Describe(), Run: rec.Run, Slack: pipeline.Slack, Healthy: healthy}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := chaos.WriteReport(f, info, results); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	broken := 0
	for _, r := range results {
		status := "ok"
		if !r.OK() {
			broken++
			status = fmt.Sprintf("%d FINDINGS", len(r.Verdict.Findings))
		}
		fmt.Fprintf(stdout, "orderschaos: %-40s %s\n", r.Scenario.Name, status)
	}
	fmt.Fprintf(stdout, "orderschaos: report in %s (%s)\n", *out, time.Since(start).Round(time.Second))
	switch {
	case abort != nil:
		return fmt.Errorf("the suite stopped early: %w", abort)
	case broken > 0:
		return errBroken
	}
	return nil
}

func dumpCommands(path string, cmds []chaos.Command) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, c := range cmds {
		if err := enc.Encode(c); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// machine describes the host: CPU model, cores, memory, kernel, and the load when the suite began.
func machine() string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.SplitN(string(raw), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	raw, _ := os.ReadFile("/proc/loadavg")
	load := strings.Fields(string(raw))
	return fmt.Sprintf("%s, %d cores%s, Linux %s; load average at the start %s (the machine is shared)", model, runtime.NumCPU(), mem,
		strings.TrimSpace(string(kernel)), strings.Join(load[:min(3, len(load))], " "))
}

// commit is the repository's HEAD, marked when the working tree has changes.
func commit(repo string) string {
	out, err := exec.Command("git", "-C", repo, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += " with uncommitted changes"
	}
	return c
}

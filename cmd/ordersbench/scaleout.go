package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/loadgen"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
)

type scaleoutConfig struct {
	DatabaseURL string
	Brokers     []string
	Events      int
	Partitions  int
	Members     []int
	Rounds      int
	// Quiet, when positive, makes each round wait (up to QuietWait) for a whole second with the
	// machine's CPU at most this share busy: other work on a shared machine takes CPU the members
	// would use.
	Quiet     float64
	QuietWait time.Duration
	Out       string
	Command   string // the command line, for the section (flags as given, -out left out)
}

// scaleoutRun is one measurement: k members of one group draining the topic into a fresh read model.
type scaleoutRun struct {
	Rate     float64 // events per second, group stable to everything committed
	Busy     float64 // share of the machine's CPU time that was busy (every process, ours or not)
	Process  float64 // cores used by this process (the members)
	Postgres float64 // cores used by the Postgres backends of the run's database
	InTx     float64 // share of the members' time spent in the read-model transaction (Handler.Apply)
}

// Others is the cores the rest of the machine used meanwhile (Kafka serving the members included).
func (r scaleoutRun) Others() float64 {
	return max(0, r.Busy*float64(runtime.NumCPU())-r.Process-r.Postgres)
}

// PerCore is events per second of CPU used by the members and their Postgres backends.
func (r scaleoutRun) PerCore() float64 {
	if r.Process+r.Postgres <= 0 {
		return 0
	}
	return r.Rate / (r.Process + r.Postgres)
}

// timedHandler adds up the time its handler spends in Apply (the read-model transaction, with the
// fold inside it).
type timedHandler struct {
	projection.Handler
	spent *atomic.Int64
}

func (h timedHandler) Apply(ctx context.Context, batch []projection.Event, ends []projection.Position) (projection.Result, error) {
	start := time.Now()
	defer func() { h.spent.Add(int64(time.Since(start))) }()
	return h.Handler.Apply(ctx, batch, ends)
}

// benchScaleout measures projector-orders scaling out: 1, 2, 3 ... members of one consumer group
// draining the same topic into a fresh read model each time, in alternating order, on one machine.
func benchScaleout(ctx context.Context, cfg scaleoutConfig, stdout io.Writer) error {
	stamp := time.Now().UnixNano()
	topic := fmt.Sprintf("bench.scaleout.%d", stamp)
	client, adm, deleteTopic, err := newTopic(ctx, cfg.Brokers, topic, int32(cfg.Partitions))
	if err != nil {
		return err
	}
	defer deleteTopic()
	recs, finals, err := produceEvents(ctx, client, topic, cfg.Events, nil)
	if err != nil {
		return err
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	pg, fsync, syncCommit, err := serverFacts(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "topic %s: %d events of %d orders on %d partitions; Postgres fsync=%s, synchronous_commit=%s\n",
		topic, len(recs), len(finals), cfg.Partitions, fsync, syncCommit)

	load0 := loadAvg()
	runs := map[int][]scaleoutRun{}
	quietRounds := 0
	for round := range cfg.Rounds {
		if cfg.Quiet > 0 {
			busy, quiet := waitQuiet(ctx, cfg.Quiet, cfg.QuietWait)
			if quiet {
				quietRounds++
			}
			fmt.Fprintf(stdout, "round %d starts with the machine %.0f%% busy (quiet: %v)\n", round+1, 100*busy, quiet)
		}
		// Alternate the order from round to round, so drift in a shared machine's load affects every
		// member count alike.
		for _, k := range rotate(cfg.Members, round) {
			group := fmt.Sprintf("bench-scaleout-%d-%d-%d", stamp, round, k)
			r, err := scaleoutOnce(ctx, cfg, adm, topic, group, k, ends, len(finals))
			if err != nil {
				return fmt.Errorf("round %d, %d members: %w", round+1, k, err)
			}
			runs[k] = append(runs[k], r)
			fmt.Fprintf(stdout, "round %d, %d members: %.0f events/s (machine %.0f%% busy; members %.2f cores, their Postgres backends %.2f, the rest %.2f; %.0f events per core-second; %.0f%% of member time in the read-model transaction)\n",
				round+1, k, r.Rate, 100*r.Busy, r.Process, r.Postgres, r.Others(), r.PerCore(), 100*r.InTx)
		}
	}

	load1 := loadAvg()
	median := func(rs []scaleoutRun, f func(scaleoutRun) float64) float64 { return loadgen.Median(field(rs, f)) }
	base := median(runs[cfg.Members[0]], scaleoutRun.rate)
	var rows, limits []string
	for _, k := range cfg.Members {
		rs := runs[k]
		med := median(rs, scaleoutRun.rate)
		each := fmt.Sprintf("%d", cfg.Partitions/k)
		if cfg.Partitions%k != 0 {
			each = fmt.Sprintf("%d or %d", cfg.Partitions/k, cfg.Partitions/k+1)
		}
		if k > cfg.Partitions {
			each = fmt.Sprintf("1 or none (%d idle)", k-cfg.Partitions)
		}
		var rounds []string
		for _, r := range rs {
			rounds = append(rounds, fmt.Sprintf("%.0f", r.Rate))
		}
		// Each round's ratio to the baseline of the same round: drift slower than a round cancels out.
		var ratios []float64
		for i, r := range rs {
			ratios = append(ratios, r.Rate/runs[cfg.Members[0]][i].Rate)
		}
		rows = append(rows, fmt.Sprintf("| %d | %s | %.0f | %.2f× | %.2f× | %s |", k, each, med, med/base, loadgen.Median(ratios),
			strings.Join(rounds, ", ")))
		limits = append(limits, fmt.Sprintf("| %d | %.0f%% | %.2f | %.2f | %.2f | %.0f | %.0f%% |", k,
			100*median(rs, func(r scaleoutRun) float64 { return r.Busy }), median(rs, func(r scaleoutRun) float64 { return r.Process }),
			median(rs, func(r scaleoutRun) float64 { return r.Postgres }), median(rs, scaleoutRun.Others), median(rs, scaleoutRun.PerCore),
			100*median(rs, func(r scaleoutRun) float64 { return r.InTx })))
	}
	quietNote := "this machine is shared, and nothing waited for it to be quiet"
	if cfg.Quiet > 0 {
		quietNote = fmt.Sprintf("this machine is shared; %d of the %d rounds started after a second with it at most %.0f%% busy, the others after waiting %s for one",
			quietRounds, cfg.Rounds, 100*cfg.Quiet, cfg.QuietWait)
	}
	host, _ := os.Hostname()
	members := make([]string, len(cfg.Members))
	for i, k := range cfg.Members {
		members[i] = strconv.Itoa(k)
	}
	section := fmt.Sprintf(`## Projector scale-out: members of one consumer group

Measured %s on %s (%d CPUs, load average %s at the start and %s at the end; median of %d rounds, the
member counts alternating in order from round to round), PostgreSQL %s with fsync=%s and
synchronous_commit=%s. Command: `+"`%s`"+` (`+"`make bench`"+` runs it with its defaults). One
%d-partition topic of %d events (placed, item added, paid, shipped for %d orders), drained by
projector-orders groups of %s members into a fresh read model each time; the %d-member group is the
baseline. Each member is built as the service builds it (static membership with the cooperative-sticky
balancer, 5,000-record batches, its own Postgres pool, the live generation written as
services/projector-orders writes it), and all of them run in this benchmark process, beside Postgres and
Kafka on the same machine. The clock starts once the group is stable with every partition assigned and
stops when the group has committed the end of every partition; every order was then checked in the read
model at its last version. The first ratio divides the medians; the second is the median of each
round's own ratio (a rate against the baseline measured next to it, in the same round).

| members | partitions each | events per second | × %d member | × %d member, same round | rounds |
|---|---|---|---|---|---|
%s

What the members got and spent (medians over the rounds): the share of the machine's CPU time that was
busy (/proc/stat), the CPU used by the members (this process) and by the Postgres backends serving them
(/proc/PID/stat), what the rest of the machine used meanwhile (Kafka serving the members, Postgres'
own background work, and every other process: %s), events per second of the members' and their
backends' CPU, and the share of the members' time spent inside the read-model transaction (read rows,
fold, upsert, commit; the rest is polling Kafka, decoding and committing offsets).

| members | machine busy | members, cores | their Postgres backends, cores | the rest of the machine, cores | events per core-second | time in the read-model transaction |
|---|---|---|---|---|---|---|
%s
`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), load0, load1, cfg.Rounds, pg, fsync, syncCommit, cfg.Command,
		cfg.Partitions, len(recs), len(finals), strings.Join(members, ", "), cfg.Members[0], cfg.Members[0], cfg.Members[0],
		strings.Join(rows, "\n"), quietNote, strings.Join(limits, "\n"))
	fmt.Fprintln(stdout, section)
	return writeSection(cfg.Out, "scaleout", section)
}

// scaleoutOnce runs k members of group over the topic into a fresh read model and times them from the
// moment the group is stable with every partition assigned until it has committed every end offset.
func scaleoutOnce(ctx context.Context, cfg scaleoutConfig, adm *kadm.Client, topic, group string, k int,
	ends kadm.ListedOffsets, orders int) (scaleoutRun, error) {
	dbURL, drop, err := scratchDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return scaleoutRun{}, err
	}
	defer drop()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	type member struct {
		pool   *pgxpool.Pool
		client *kgo.Client
		loop   *projection.Loop
		pc     projection.Config
	}
	members := make([]*member, k)
	var inTx atomic.Int64
	defer func() {
		for _, m := range members {
			if m == nil {
				continue
			}
			if m.client != nil {
				m.client.Close()
				lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				_ = m.pc.LeaveGroup(lctx) // static members do not leave when they close
				cancel()
			}
			m.pool.Close()
		}
		_, _ = adm.DeleteGroup(context.WithoutCancel(ctx), group)
	}()
	for i := range k {
		pool, err := pgxpool.New(ctx, dbURL) // each member is a replica with its own pool
		if err != nil {
			return scaleoutRun{}, err
		}
		members[i] = &member{pool: pool}
		gen, err := readmodel.Ensure(ctx, pool) // as each replica does at start: the live generation
		if err != nil {
			return scaleoutRun{}, err
		}
		parking, err := readmodel.NewParking(ctx, pool, gen)
		if err != nil {
			return scaleoutRun{}, err
		}
		pc := projection.Config{Brokers: cfg.Brokers, Topic: topic, Group: group,
			InstanceID: fmt.Sprintf("%s-m%d", group, i), Session: 45 * time.Second, BatchSize: 5000}
		cl, err := kgo.NewClient(pc.MemberOptions()...)
		if err != nil {
			return scaleoutRun{}, err
		}
		members[i].client, members[i].pc = cl, pc
		members[i].loop = &projection.Loop{Client: cl, Handler: timedHandler{readmodel.Handler{Pool: pool, OnGeneration: parking.Use}, &inTx},
			Parking: parking, Topic: topic, Group: group, Log: quiet, Metrics: projection.NewMetrics(), MaxRecords: pc.BatchSize}
	}
	// The clients join the group as soon as they exist; nothing is applied before the first poll.
	if err := waitAssigned(ctx, adm, group, topic, int32(cfg.Partitions), k); err != nil {
		return scaleoutRun{}, err
	}
	pids, err := backendPIDs(ctx, members[0].pool)
	if err != nil {
		return scaleoutRun{}, err
	}

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, k)
	inTx.Store(0)
	cpu0, proc0, pg0 := machineCPU(), processCPU(), pidsCPU(pids)
	start := time.Now()
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil {
				if err := m.loop.RunOnce(rctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var elapsed time.Duration
	for {
		done, err := committedAll(rctx, adm, group, ends)
		if err != nil {
			stop()
			wg.Wait()
			return scaleoutRun{}, err
		}
		if done {
			elapsed = time.Since(start)
			break
		}
		select {
		case err := <-errs:
			stop()
			wg.Wait()
			return scaleoutRun{}, fmt.Errorf("member: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(start) > 10*time.Minute {
			stop()
			wg.Wait()
			return scaleoutRun{}, fmt.Errorf("the group had not committed every partition's end after 10 minutes")
		}
	}
	cpu1, proc1, pg1 := machineCPU(), processCPU(), pidsCPU(pids)
	stop()
	wg.Wait()
	spent := time.Duration(inTx.Load())

	// Every order must be in the read model at its last version (4).
	var rows, atLast int
	if err := members[0].pool.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE version = 4) FROM orders_read.orders").Scan(&rows, &atLast); err != nil {
		return scaleoutRun{}, err
	}
	if rows != orders || atLast != orders {
		return scaleoutRun{}, fmt.Errorf("read model holds %d orders, %d at version 4; want %d", rows, atLast, orders)
	}
	secs := elapsed.Seconds()
	var events int64
	for _, o := range ends {
		for _, p := range o {
			events += p.Offset
		}
	}
	return scaleoutRun{Rate: float64(events) / secs, Busy: cpu1.busySince(cpu0),
		Process: (proc1 - proc0).Seconds() / secs, Postgres: cpuSince(pg0, pg1).Seconds() / secs,
		InTx: spent.Seconds() / (float64(k) * secs)}, nil
}

// waitAssigned waits until the group is stable with k members and every partition of topic is
// assigned to exactly one of them.
func waitAssigned(ctx context.Context, adm *kadm.Client, group, topic string, partitions int32, k int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		gs, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil {
				var assigned [][]int32
				for _, m := range g.Members {
					var ps []int32
					if c, ok := m.Assigned.AsConsumer(); ok {
						for _, t := range c.Topics {
							if t.Topic == topic {
								ps = append(ps, t.Partitions...)
							}
						}
					}
					assigned = append(assigned, ps)
				}
				if groupReady(g.State, assigned, partitions, k) {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("group %s: not stable with %d members and every partition assigned after 2 minutes", group, k)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// groupReady reports whether a group in state, whose members hold the assigned partitions, is ready to
// be timed: stable, k members, each of the partitions held by exactly one member, and as many members
// holding some as there can be (min(k, partitions)).
func groupReady(state string, assigned [][]int32, partitions int32, k int) bool {
	if state != "Stable" || len(assigned) != k {
		return false
	}
	seen := map[int32]bool{}
	holders := 0
	for _, ps := range assigned {
		if len(ps) > 0 {
			holders++
		}
		for _, p := range ps {
			if p < 0 || p >= partitions || seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	return len(seen) == int(partitions) && holders == min(k, int(partitions))
}

// committedAll reports whether the group has committed at least the end offset of every partition.
func committedAll(ctx context.Context, adm *kadm.Client, group string, ends kadm.ListedOffsets) (bool, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, nil // the coordinator may be busy with the group; ask again
	}
	for t, ps := range ends {
		for p, end := range ps {
			if end.Err != nil {
				return false, end.Err
			}
			c, ok := committed.Lookup(t, p)
			if !ok || c.Err != nil || c.At < end.Offset {
				return false, nil
			}
		}
	}
	return true, nil
}

// rotate returns xs rotated left by n: round n of an alternating benchmark starts with xs[n%len].
func rotate(xs []int, n int) []int {
	if len(xs) == 0 {
		return nil
	}
	n %= len(xs)
	return append(slices.Clone(xs[n:]), xs[:n]...)
}

// parseMembers reads a comma-separated list of member counts (each 1 or more, no repeats).
func parseMembers(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-members: %q is not a member count (1 or more)", f)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("-members: %d appears twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

func (r scaleoutRun) rate() float64 { return r.Rate }

func field(rs []scaleoutRun, f func(scaleoutRun) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// backendPIDs returns a function that lists the server processes of the pool's database: the
// members' connections (and the query that lists them).
func backendPIDs(ctx context.Context, pool *pgxpool.Pool) (func() []int, error) {
	var db string
	if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return nil, err
	}
	return func() []int {
		rows, err := pool.Query(context.WithoutCancel(ctx), "SELECT pid FROM pg_stat_activity WHERE datname = $1", db)
		if err != nil {
			return nil
		}
		pids, _ := pgx.CollectRows(rows, pgx.RowTo[int])
		return pids
	}, nil
}

// cpuTimes are the machine's CPU counters (/proc/stat, clock ticks): busy and total.
type cpuTimes struct{ busy, total uint64 }

func (c cpuTimes) busySince(before cpuTimes) float64 {
	if c.total <= before.total {
		return 0
	}
	return float64(c.busy-before.busy) / float64(c.total-before.total)
}

// machineCPU reads the first line of /proc/stat (zero where there is none).
func machineCPU() cpuTimes {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return cpuTimes{}
	}
	fields := strings.Fields(line)
	var t cpuTimes
	for i, s := range fields[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		t.total += n
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
	}
	return t
}

// processCPU is this process's CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSince is the CPU time the processes of after used since before (a process absent from before
// started since).
func cpuSince(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range after {
		d += t - before[pid]
	}
	return d
}

// pidsCPU is the CPU time so far of the processes listed (utime + stime of /proc/PID/stat), keyed by
// pid; processes that are gone count as nothing.
func pidsCPU(list func() []int) map[int]time.Duration {
	out := map[int]time.Duration{}
	for _, pid := range list() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name (field 2) may hold spaces; fields after its closing parenthesis are plain.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseUint(f[11], 10, 64)
		st, err2 := strconv.ParseUint(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			continue
		}
		out[pid] = time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
	}
	return out
}

// loadAvg is the machine's 1-minute load average (/proc/loadavg), "?" where there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// waitQuiet waits until a second passes with the machine's CPU at most the share quiet busy, or until
// wait has passed; it returns the last second's busy share and whether it was quiet.
func waitQuiet(ctx context.Context, quiet float64, wait time.Duration) (float64, bool) {
	deadline := time.Now().Add(wait)
	for {
		before := machineCPU()
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(time.Second):
		}
		busy := machineCPU().busySince(before)
		if busy <= quiet {
			return busy, true
		}
		if time.Now().After(deadline) {
			return busy, false
		}
	}
}

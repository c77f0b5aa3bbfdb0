// Package chaos is the fault suite of the local stack (`make chaos`, docs/reliability.md): a workload
// of concurrent clients drives the command API over HTTP while faults hit the servers and services
// that deploy/local runs (kill -9, SIGSTOP, a late-committing transaction, a poison record). After
// each scenario a checker waits until the pipeline has provably caught up, then checks the promises
// against the event store, the events topic and both read models. cmd/orderschaos runs the suites and
// writes RELIABILITY.md.
//
// It acts only on processes named by the pid files of its own stack (ORDERS_LOCAL_DIR), and on the
// standby relay it starts itself.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/pii"
)

// The services of deploy/local/services.sh and the servers of deploy/local/stack.sh.
const (
	CommandAPI       = "command"
	QueryAPI         = "query"
	Relay            = "outbox-relay"
	ProjectorOrders  = "projector-orders"
	ProjectorSearch  = "projector-search"
	Postgres         = "postgres"
	Kafka            = "kafka"
	OpenSearch       = "opensearch"
	standbyRelayName = "outbox-relay-standby"
)

// services in the order services.sh starts them.
var services = []string{CommandAPI, Relay, ProjectorOrders, ProjectorSearch, QueryAPI}

// Stack is the local stack the suite targets, configured by the variables deploy/local/stack.sh and
// services.sh read (ORDERS_LOCAL_DIR, PG_PORT, KAFKA_PORT, OPENSEARCH_PORT, COMMAND_PORT, ...), so
// the suite hits whichever stack those scripts run.
type Stack struct {
	Repo          string // the repository root: deploy/local/*.sh and bin/
	Local         string // ORDERS_LOCAL_DIR: pid files, logs
	DatabaseURL   string
	Brokers       []string
	OpenSearchURL string
	Topic         string // EVENTS_TOPIC
	Alias         string // SEARCH_INDEX_ALIAS
	Groups        []string
	// MasterKeyFile is PII_MASTER_KEY_FILE: the checker opens the personal data the events hold sealed
	// to compare the read models with the fold of the store.
	MasterKeyFile string
	ports         map[string]int
}

// ReadStack reads the stack's configuration from the environment; repo is the repository root.
func ReadStack(getenv func(string) string, repo string) (Stack, error) {
	r := envconfig.New(getenv)
	s := Stack{Repo: repo, ports: map[string]int{}}
	s.Local = r.String("ORDERS_LOCAL_DIR", filepath.Join(repo, ".local"))
	pg := r.Int("PG_PORT", 5432, 1, 65535)
	kafka := r.Int("KAFKA_PORT", 9092, 1, 65535)
	osPort := r.Int("OPENSEARCH_PORT", 9200, 1, 65535)
	for name, v := range map[string]struct {
		env string
		def int
	}{CommandAPI: {"COMMAND_PORT", 8080}, QueryAPI: {"QUERY_PORT", 8081}, Relay: {"RELAY_PORT", 8082},
		ProjectorOrders: {"PROJECTOR_ORDERS_PORT", 8083}, ProjectorSearch: {"PROJECTOR_SEARCH_PORT", 8084}} {
		s.ports[name] = r.Int(v.env, v.def, 1, 65535)
	}
	// The URLs stack.sh derives from the ports, unless set (make chaos exports what stack.sh env says).
	s.DatabaseURL = r.String("DATABASE_URL", fmt.Sprintf("postgres://orders:orders@127.0.0.1:%d/orders?sslmode=disable", pg))
	s.Brokers = r.List("KAFKA_BROKERS", false)
	if len(s.Brokers) == 0 {
		s.Brokers = []string{fmt.Sprintf("127.0.0.1:%d", kafka)}
	}
	s.OpenSearchURL = r.String("OPENSEARCH_URL", fmt.Sprintf("http://127.0.0.1:%d", osPort))
	s.Topic = r.String("EVENTS_TOPIC", "orders.events")
	s.Alias = r.String("SEARCH_INDEX_ALIAS", "orders")
	s.Groups = []string{r.String("PROJECTOR_ORDERS_GROUP", "projector-orders"), r.String("PROJECTOR_SEARCH_GROUP", "projector-search")}
	s.MasterKeyFile = r.String("PII_MASTER_KEY_FILE", filepath.Join(s.Local, "pii", "master.key"))
	return s, r.Err()
}

// Keys opens the personal data of the stack's events, with its master key (read now).
func (s Stack) Keys(db pii.DB) (*pii.Keyring, error) {
	master, err := pii.LoadMasterKey(s.MasterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("PII_MASTER_KEY_FILE: %w", err)
	}
	return pii.New(db, master, pii.Options{}), nil
}

// URL is a service's base URL.
func (s Stack) URL(service string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", s.ports[service])
}

func (s Stack) pidFile(name string) string {
	switch name {
	case Postgres, Kafka, OpenSearch:
		return filepath.Join(s.Local, "run", name+".pid")
	}
	return filepath.Join(s.Local, "services", name+".pid")
}

// ErrNotRunning: the pid file names no live process of ours.
var ErrNotRunning = errors.New("not running")

// Pid returns the live process named by the stack's pid file for name, after checking that it is the
// program the file is for (a pid file left behind may name a recycled pid).
func (s Stack) Pid(name string) (int, error) {
	raw, err := os.ReadFile(s.pidFile(name))
	if err != nil {
		return 0, fmt.Errorf("%s: %w (%v)", name, ErrNotRunning, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s: bad pid file %s", name, s.pidFile(name))
	}
	if !alive(pid) {
		return 0, fmt.Errorf("%s: %w (pid %d)", name, ErrNotRunning, pid)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(string(cmdline), "\x00")
	if !isProgram(name, args) {
		return 0, fmt.Errorf("%s: pid %d from %s is another program (%q); not touching it", name, pid, s.pidFile(name), strings.Join(args, " "))
	}
	return pid, nil
}

// isProgram tells whether a command line is the program the pid file of name is for.
func isProgram(name string, args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch name {
	case Postgres:
		return filepath.Base(args[0]) == "postgres"
	case Kafka:
		return strings.Contains(strings.Join(args, " "), "kafka.Kafka")
	case OpenSearch:
		return strings.Contains(strings.Join(args, " "), "org.opensearch.bootstrap.OpenSearch")
	case standbyRelayName:
		return filepath.Base(args[0]) == Relay
	}
	return filepath.Base(args[0]) == name
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses, so look after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// children lists the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Signal sends sig to the stack's process for name. SIGKILL of Postgres kills the postmaster and
// every backend it forked (the server crashes as a whole, as on a lost machine).
func (s Stack) Signal(name string, sig syscall.Signal) error {
	pid, err := s.Pid(name)
	if err != nil {
		return err
	}
	var kids []int
	if name == Postgres && sig == syscall.SIGKILL {
		kids = children(pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, name, pid, err)
	}
	for _, k := range kids {
		_ = syscall.Kill(k, sig)
	}
	if sig == syscall.SIGKILL {
		return waitGone(pid, 10*time.Second)
	}
	return nil
}

// Stop ends a service gracefully (SIGTERM, as services.sh does) and waits for it to exit.
func (s Stack) Stop(name string) error {
	pid, err := s.Pid(name)
	if errors.Is(err, ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return waitGone(pid, 30*time.Second)
}

func waitGone(pid int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still alive after %s", pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Start starts what is not running the way `make up` does: a service through
// `deploy/local/services.sh start` (which starts every service that is not running and waits until
// it is ready), a server through `deploy/local/stack.sh start NAME`. env adds variables for the
// started processes (PROJECTOR_INSTANCE_ID=none). Output goes to the log.
func (s Stack) Start(ctx context.Context, name string, log *os.File, env ...string) error {
	script, args := filepath.Join(s.Repo, "deploy/local/services.sh"), []string{"start"}
	switch name {
	case Postgres, Kafka, OpenSearch:
		script, args = filepath.Join(s.Repo, "deploy/local/stack.sh"), []string{"start", name}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Dir = s.Repo
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if log != nil {
		fmt.Fprintf(log, "%s $ %s %s\n%s", time.Now().Format(time.RFC3339Nano), script, strings.Join(args, " "), out.String())
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(script), strings.Join(args, " "), err, lastLines(out.String(), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

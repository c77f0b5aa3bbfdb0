package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StandbyInstance is the RELAY_INSTANCE_ID of the second relay the suite runs beside the stack's.
const StandbyInstance = "chaos-standby"

// Standby is a second outbox relay, started by the suite with an instance name and a port of its own,
// so that a paused leader has someone to take over from it.
type Standby struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	pidf string
}

// StartStandby starts bin/outbox-relay as a standby (RELAY_INSTANCE_ID=chaos-standby, a free port)
// and waits until it is ready. A standby a previous run left behind (its pid file, still that
// program) is stopped first.
func (s Stack) StartStandby(ctx context.Context) (*Standby, error) {
	if pid, err := s.Pid(standbyRelayName); err == nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = waitGone(pid, 30*time.Second)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.Local, "services", standbyRelayName+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(filepath.Join(s.Repo, "bin", Relay))
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.roleURL(ctx, "orders_relay"), "KAFKA_BROKERS="+strings.Join(s.Brokers, ","),
		"EVENTS_TOPIC="+s.Topic, fmt.Sprintf("HTTP_ADDR=127.0.0.1:%d", port), "RELAY_INSTANCE_ID="+StandbyInstance)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C of the suite reaches the suite, which stops it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start standby relay: %w", err)
	}
	sb := &Standby{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{}),
		pidf: s.pidFile(standbyRelayName)}
	go func() { _ = cmd.Wait(); close(sb.done) }()
	_ = os.WriteFile(sb.pidf, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	if err := waitReady(ctx, sb.URL, 60*time.Second, sb.done); err != nil {
		sb.Stop()
		return nil, fmt.Errorf("standby relay (log %s): %w", logPath, err)
	}
	return sb, nil
}

// roleURL is the Postgres URL a service's login role uses (`stack.sh db-url ROLE`, as services.sh
// gives the stack's relay), or the stack's own URL when the script knows no such command.
func (s Stack) roleURL(ctx context.Context, role string) string {
	out, err := exec.CommandContext(ctx, filepath.Join(s.Repo, "deploy/local/stack.sh"), "db-url", role).Output()
	if u := strings.TrimSpace(string(out)); err == nil && strings.HasPrefix(u, "postgres") {
		return u
	}
	return s.DatabaseURL
}

// Pid is the standby's process id.
func (sb *Standby) Pid() int { return sb.cmd.Process.Pid }

// Stop ends the standby gracefully (SIGTERM; SIGKILL after 30 s) and waits for it; a stopped
// (SIGSTOP) standby is continued first.
func (sb *Standby) Stop() {
	_ = sb.cmd.Process.Signal(syscall.SIGCONT)
	_ = sb.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sb.done:
	case <-time.After(30 * time.Second):
		_ = sb.cmd.Process.Kill()
		<-sb.done
	}
	_ = os.Remove(sb.pidf)
}

// waitReady polls base/readyz until it answers 200; exited, when closed, means the process is gone.
func waitReady(ctx context.Context, base string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	c := &http.Client{Timeout: time.Second}
	for {
		if res, err := c.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited during start-up")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", d)
		}
	}
}

// gauge reads one unlabelled sample (`name value`) from a Prometheus text endpoint.
func gauge(ctx context.Context, url, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: no sample %s", url, name)
}

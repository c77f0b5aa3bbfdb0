package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Broker is a single-node Kafka of one test's own, for tests that stop and start the broker (outages,
// restarts) without disturbing the shared one. It runs from the jars the local stack installed
// (`make up` or `make test` put them under .local/kafka/libs; ORDERS_KAFKA_LIBS overrides).
type Broker struct {
	t       testing.TB
	dir     string
	port    int
	java    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	logFile string
}

// StartKafka starts a private broker on free loopback ports and stops it when the test ends.
func StartKafka(t testing.TB) *Broker {
	t.Helper()
	libs := os.Getenv("ORDERS_KAFKA_LIBS")
	if libs == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		libs = filepath.Join(root, ".local", "kafka", "libs")
		if d := os.Getenv("ORDERS_LOCAL_DIR"); d != "" {
			libs = filepath.Join(d, "kafka", "libs")
		}
	}
	if _, err := os.Stat(libs); err != nil {
		t.Fatalf("testenv: no Kafka jars at %s (%v): run `make up` once, or set ORDERS_KAFKA_LIBS", libs, err)
	}
	javaHome := os.Getenv("ORDERS_JAVA_HOME")
	if javaHome == "" {
		javaHome = "/usr/lib/jvm/java-17-openjdk-amd64"
	}
	b := &Broker{t: t, dir: t.TempDir(), port: freePort(t)}
	controller := freePort(t)
	b.logFile = filepath.Join(b.dir, "server.log")
	props := filepath.Join(b.dir, "server.properties")
	cfg := fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=%[3]s
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`, b.port, controller, filepath.Join(b.dir, "data"))
	if err := os.WriteFile(props, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b.java = []string{filepath.Join(javaHome, "bin", "java"), "-Xms256m", "-Xmx256m",
		"-Dlog4j2.configurationFile=" + filepath.Join(b.dir, "log4j2.properties"), "-Dkafka.logs.dir=" + b.dir,
		"-cp", filepath.Join(libs, "*")}
	logCfg := "status = warn\nappender.f.type = File\nappender.f.name = f\nappender.f.fileName = ${sys:kafka.logs.dir}/server.log\n" +
		"appender.f.layout.type = PatternLayout\nappender.f.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = INFO\nrootLogger.appenderRef.f.ref = f\n"
	if err := os.WriteFile(filepath.Join(b.dir, "log4j2.properties"), []byte(logCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	format := exec.Command(b.java[0], append(b.java[1:], "kafka.tools.StorageTool", "format",
		"-t", "testenvprivatebroker0", "-c", props, "--ignore-formatted")...)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("testenv: format private Kafka storage: %v\n%s", err, out)
	}
	t.Cleanup(func() { b.stop(syscall.SIGKILL) })
	b.Start()
	return b
}

// Brokers returns the private broker's address.
func (b *Broker) Brokers() []string { return []string{fmt.Sprintf("127.0.0.1:%d", b.port)} }

// Start (re)starts the broker on the same port and data, and waits until it serves metadata.
func (b *Broker) Start() {
	b.t.Helper()
	if b.cmd != nil {
		b.t.Fatal("testenv: private Kafka is already running")
	}
	b.cmd = exec.Command(b.java[0], append(b.java[1:], "kafka.Kafka", filepath.Join(b.dir, "server.properties"))...)
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("testenv: start private Kafka: %v", err)
	}
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(b.cmd, b.exited)

	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Brokers()...))
	if err != nil {
		b.t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		md, err := adm.BrokerMetadata(ctx)
		cancel()
		if err == nil && len(md.Brokers) > 0 && md.Controller >= 0 {
			return
		}
		select {
		case <-b.exited:
			b.t.Fatalf("testenv: private Kafka exited during start-up; log: %s", tail(b.logFile))
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("testenv: private Kafka not ready after 90s (%v); log: %s", err, tail(b.logFile))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop shuts the broker down cleanly (SIGTERM) and waits for it to exit.
func (b *Broker) Stop() { b.t.Helper(); b.stop(syscall.SIGTERM) }

// Kill stops the broker abruptly (SIGKILL).
func (b *Broker) Kill() { b.t.Helper(); b.stop(syscall.SIGKILL) }

func (b *Broker) stop(sig syscall.Signal) {
	if b.cmd == nil {
		return
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, sig)
	select {
	case <-b.exited:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
	}
	b.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	return freeTCPAddr(t).Port
}

// FreeAddr is a loopback address (127.0.0.1:port) no one listens on now, for a server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeTCPAddr(t).String()
}

func freeTCPAddr(t testing.TB) *net.TCPAddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// Package deploy_test checks deploy/compose.yaml and deploy/Dockerfile without Docker: the Kafka cluster
// id is valid, every server and service has a health check that can run in its image, every service gets
// the variables its documentation and its code require, and the Dockerfile builds every program the
// compose file and the Kubernetes manifests run.
package deploy_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Profiles    []string          `yaml:"profiles"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Environment map[string]string `yaml:"environment"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	src, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(src, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return c
}

// appServices are the directories under services/: the long-running programs.
func appServices(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("../services")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join("../services", e.Name(), "main.go")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	if len(names) < 5 {
		t.Fatalf("found %d services under services/, want at least 5", len(names))
	}
	return names
}

func TestKafkaClusterID(t *testing.T) {
	id := loadCompose(t).Services["kafka"].Environment["CLUSTER_ID"]
	// Kafka's Uuid.fromString: base64url without padding of 16 bytes.
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Fatalf("kafka CLUSTER_ID %q: %d bytes, err %v; want 16 bytes in base64url without padding", id, len(b), err)
	}
}

func TestHealthChecks(t *testing.T) {
	c := loadCompose(t)
	built := dockerfileBinaries(t)
	for name, s := range c.Services {
		server := len(s.Profiles) == 0
		if !server && !slices.Contains(s.Profiles, "services") {
			continue // tools, run on demand
		}
		if oneShot(c, name) {
			continue // a migration that runs to completion: others wait for it to finish, not to be healthy
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 {
			t.Errorf("%s: no health check", name)
			continue
		}
		test := s.Healthcheck.Test
		if !server {
			// Our image has no shell: the check must exec a binary the Dockerfile builds, on this
			// service's own readiness endpoint.
			if test[0] != "CMD" || !slices.Contains(built, strings.TrimPrefix(test[1], "/usr/local/bin/")) || !strings.HasPrefix(test[1], "/usr/local/bin/") {
				t.Errorf("%s: health check %q does not exec a binary of the image", name, test)
			}
			addr := s.Environment["HTTP_ADDR"]
			if want := "http://127.0.0.1" + addr + "/readyz"; addr == "" || !slices.Contains(test, want) {
				t.Errorf("%s: health check %q does not probe %s", name, test, want)
			}
		}
	}
}

// oneShot says whether other services wait for name to complete successfully.
func oneShot(c composeFile, name string) bool {
	for _, s := range c.Services {
		if d, ok := s.DependsOn[name]; ok && d.Condition == "service_completed_successfully" {
			return true
		}
	}
	return false
}

func TestServicesRunTheirBinary(t *testing.T) {
	c := loadCompose(t)
	built := dockerfileBinaries(t)
	for _, name := range appServices(t) {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s is not in compose.yaml", name)
			continue
		}
		if want := []string{"/usr/local/bin/" + name}; !slices.Equal(s.Command, want) {
			t.Errorf("%s: command %q, want %q", name, s.Command, want)
		}
		if !slices.Contains(s.Profiles, "services") {
			t.Errorf("%s: not in the services profile", name)
		}
	}
	for name, s := range c.Services {
		for _, argv := range [][]string{s.Entrypoint, s.Command} {
			if len(argv) > 0 && strings.HasPrefix(argv[0], "/usr/local/bin/") && !slices.Contains(built, strings.TrimPrefix(argv[0], "/usr/local/bin/")) {
				t.Errorf("%s runs %s, which the Dockerfile does not build", name, argv[0])
			}
		}
	}
	tools, ok := c.Services["ordersctl"]
	if !ok || !slices.Contains(tools.Profiles, "tools") {
		t.Error("no ordersctl service in the tools profile")
	}
	if m, ok := c.Services["migrate"]; !ok || !slices.Equal(m.Command, []string{"/usr/local/bin/ordersctl", "migrate"}) {
		t.Error("no one-shot migrate service running ordersctl migrate")
	}
}

func TestServicesGetTheirRequiredVariables(t *testing.T) {
	c := loadCompose(t)
	docs := documentedRequired(t)
	for _, name := range appServices(t) {
		want := slices.Concat(docs[name], codeRequired(t, name), []string{"HTTP_ADDR"})
		if len(docs[name]) == 0 {
			t.Errorf("%s: docs/configuration.md lists no required variable for it", name)
		}
		env := c.Services[name].Environment
		for _, v := range want {
			if strings.TrimSpace(env[v]) == "" {
				t.Errorf("%s: %s is required (docs/configuration.md, docs/relay.md or its main.go) but not set", name, v)
			}
		}
	}
}

// codeRequired returns the variables a service's main.go reads with envconfig's Required or a required List.
func codeRequired(t *testing.T, service string) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("../services", service, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\.(?:Required\("([A-Z0-9_]+)"\)|List\("([A-Z0-9_]+)", true\))`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// documentedRequired reads docs/configuration.md (and docs/relay.md for outbox-relay): in each
// service's section, the variables of rows whose default is "required"; in the shared table, the
// variables marked required for the services named in "used by".
func documentedRequired(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	vars := regexp.MustCompile("`([A-Z0-9_]+)`")
	// parse reads one file; rename maps a section heading to the service it describes.
	parse := func(path string, rename map[string]string) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		section := ""
		for _, line := range strings.Split(string(src), "\n") {
			h, ok := strings.CutPrefix(line, "## ")
			if !ok {
				h, ok = strings.CutPrefix(line, "### ") // a service's own section under a shared one (the projectors)
			}
			if ok {
				section = strings.TrimSpace(h)
				if r, ok := rename[section]; ok {
					section = r
				}
				continue
			}
			cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
			if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[len(cells)-1]), "required") {
				continue
			}
			names := vars.FindAllStringSubmatch(cells[0], -1)
			targets := []string{section}
			if section == "Shared" {
				targets = strings.Split(cells[1], ",")
			}
			for _, target := range targets {
				target = strings.TrimSpace(target)
				for _, n := range names {
					if !slices.Contains(out[target], n[1]) {
						out[target] = append(out[target], n[1])
					}
				}
			}
		}
	}
	parse("../docs/configuration.md", nil)
	parse("../docs/relay.md", map[string]string{"Configuration": "outbox-relay"})
	return out
}

// dockerfileBinaries returns the names of the binaries deploy/Dockerfile builds into /usr/local/bin,
// after checking the build is cache-friendly and stamps the version.
func dockerfileBinaries(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Join continued lines, drop comments.
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(src), "\\\n", " "), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	index := func(prefix string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	download, copyAll, build := index("RUN go mod download"), index("COPY . ."), slices.IndexFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "RUN") && strings.Contains(l, "go build")
	})
	if download < 0 || copyAll < 0 || build < 0 {
		t.Fatalf("Dockerfile: want RUN go mod download, COPY . . and a RUN go build")
	}
	if download > copyAll {
		t.Error("Dockerfile downloads modules after copying the source: every change would download them again")
	}
	for i, l := range lines[:download] {
		if strings.HasPrefix(l, "ARG") && i > index("FROM") {
			t.Errorf("Dockerfile: %q comes before the module download, so changing it downloads again", l)
		}
	}
	cmd := lines[build]
	if !strings.Contains(cmd, "--mount=type=cache,target=/root/.cache/go-build") {
		t.Error("Dockerfile: the go build does not use a cache mount for the Go build cache")
	}
	for _, v := range []string{"internal/buildinfo.Version=", "internal/buildinfo.Commit="} {
		if !strings.Contains(cmd, "-X github.com/orders-oss/orders/"+v) {
			t.Errorf("Dockerfile: go build does not stamp %s", v)
		}
	}
	if !strings.Contains(cmd, "-o /out/") || index("COPY --from=build /out/ /usr/local/bin/") < 0 {
		t.Error("Dockerfile: binaries are not built into /out/ and copied to /usr/local/bin/")
	}
	var final string
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = l
		}
	}
	if !strings.Contains(final, "distroless") || !strings.Contains(final, "nonroot") {
		t.Errorf("Dockerfile: final stage %q is not a distroless nonroot image", final)
	}
	var pkgs, built []string
	for _, f := range strings.Fields(cmd) {
		if strings.HasPrefix(f, "./") {
			pkgs = append(pkgs, f)
			built = append(built, filepath.Base(f))
		}
	}
	want := []string{"./cmd/ordersctl", "./deploy/local/probe"}
	for _, s := range appServices(t) {
		want = append(want, "./services/"+s)
	}
	for _, w := range want {
		if !slices.Contains(pkgs, w) {
			t.Errorf("Dockerfile does not build %s", w)
		}
	}
	return built
}

func TestDockerfileBuildsEveryProgram(t *testing.T) {
	dockerfileBinaries(t)
}

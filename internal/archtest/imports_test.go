// Package archtest checks the import rules that keep the architecture what docs/architecture.md says:
// services never import each other; cmd/ordersctl imports no services/ (what it shares with a service
// lives in internal/); pkg/ imports no internal/; the domain (internal/order) and the wire contract
// (pkg/events, pkg/api, pkg/publicevents) do no I/O. Test files count, with and without the integration
// build tag.
package archtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/orders-oss/orders"

// pkg is what `go list -json` says of a package that the rules look at.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Deps         []string
}

func (p pkg) allImports() []string {
	return slices.Concat(p.Imports, p.TestImports, p.XTestImports)
}

// ioPackages are the packages that mean I/O: the domain and the wire contract import none of them,
// directly or through another package. (net and database/sql/driver themselves come in through
// google/uuid and net/mail, which only parse.)
var ioPackages = []string{"net/http", "os/exec", "github.com/jackc/pgx", "github.com/twmb/franz-go",
	"github.com/opensearch-project/opensearch-go", "github.com/labstack/echo"}

// noIO are the packages that must do no I/O.
var noIO = []string{module + "/internal/order", module + "/pkg/events", module + "/pkg/api", module + "/pkg/publicevents"}

// violations lists every broken rule among pkgs.
func violations(pkgs []pkg) []string {
	var out []string
	rel := func(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }
	service := func(path string) string { // "services/command/httpapi" -> "services/command"
		parts := strings.SplitN(rel(path), "/", 3)
		if len(parts) >= 2 && parts[0] == "services" {
			return parts[0] + "/" + parts[1]
		}
		return ""
	}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		for _, imp := range p.allImports() {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			to := rel(imp)
			switch {
			case service(p.ImportPath) != "" && service(imp) != "" && service(p.ImportPath) != service(imp):
				out = append(out, fmt.Sprintf("%s imports %s: services never import each other (move what they share to internal/)", from, to))
			case strings.HasPrefix(from, "cmd/ordersctl") && service(imp) != "":
				out = append(out, fmt.Sprintf("%s imports %s: ordersctl imports no services/ (move what it shares with a service to internal/)", from, to))
			case strings.HasPrefix(from, "pkg/") && strings.HasPrefix(to, "internal/"):
				out = append(out, fmt.Sprintf("%s imports %s: pkg/ imports no internal/ (it is usable outside the module)", from, to))
			}
		}
		if slices.Contains(noIO, p.ImportPath) {
			for _, dep := range slices.Concat(p.Deps, p.allImports()) {
				for _, io := range ioPackages {
					if dep == io || strings.HasPrefix(dep, io+"/") {
						out = append(out, fmt.Sprintf("%s depends on %s: the domain and the wire contract do no I/O", from, dep))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func list(t *testing.T, tags string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-tags", tags, "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the module has more", len(pkgs))
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	for _, tags := range []string{"", "integration"} {
		for _, v := range violations(list(t, tags)) {
			t.Errorf("tags %q: %s", tags, v)
		}
	}
}

func TestViolationsAreFound(t *testing.T) {
	pkgs := []pkg{
		{ImportPath: module + "/services/query/httpapi", Imports: []string{module + "/services/command/httpapi"}},
		{ImportPath: module + "/services/command", TestImports: []string{module + "/services/command/httpapi"}}, // its own: fine
		{ImportPath: module + "/cmd/ordersctl", XTestImports: []string{module + "/services/outbox-relay"}},
		{ImportPath: module + "/pkg/api", Imports: []string{module + "/internal/order"}},
		{ImportPath: module + "/internal/order", Deps: []string{"github.com/jackc/pgx/v5/pgconn"}},
		{ImportPath: module + "/pkg/events", TestImports: []string{"net/http"}},
		{ImportPath: module + "/internal/readmodel", Imports: []string{"github.com/jackc/pgx/v5"}}, // an adapter: fine
	}
	got := violations(pkgs)
	want := []string{"cmd/ordersctl imports services/outbox-relay", "internal/order depends on github.com/jackc/pgx/v5/pgconn",
		"pkg/api imports internal/order", "pkg/events depends on net/http", "services/query/httpapi imports services/command/httpapi"}
	if len(got) != len(want) {
		t.Fatalf("violations() = %q, want %d of them", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("violation %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

// Package buildinfo says which build of orders is running: the version and commit stamped at link time
// (go build -ldflags "-X github.com/orders-oss/orders/internal/buildinfo.Version=v1.2.3 -X ...Commit=abc"),
// or, when not stamped, what the Go toolchain recorded (the VCS revision of a build from a checkout).
// Every binary reports it: ordersctl version, and the build-info gauge of each service.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Stamped at link time; see the package doc.
var (
	Version = ""
	Commit  = ""
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Modified  bool   `json:"modified,omitempty"` // built from a checkout with uncommitted changes
}

// Read returns the running binary's build info. Version is "dev" and Commit "unknown" when neither the
// linker flags nor the toolchain say otherwise.
func Read() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}

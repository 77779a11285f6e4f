// Package buildinfo reads mailgate's version from the module build
// information the Go toolchain embeds in the binary (README "Version").
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is the module version ("v1.2.3" when built with `go install
// mailgate@v1.2.3`); for a build from a checkout, "devel" followed by the
// VCS revision and "+dirty" when the tree had changes; "unknown" when the
// binary carries no build information.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return version(bi)
}

func version(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	v := "devel"
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " " + rev
		if modified == "true" {
			v += "+dirty"
		}
	}
	return strings.TrimSpace(v)
}

// GoVersion is the Go release the binary was built with.
func GoVersion() string { return runtime.Version() }

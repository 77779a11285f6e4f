package main

import (
	"fmt"
	"io"

	"mailgate/internal/buildinfo"
)

// runVersion prints the version from the module build information
// (`mailgate version`, `mailgate --version`).
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	fmt.Fprintf(stdout, "mailgate %s (%s)\n", buildinfo.Version(), buildinfo.GoVersion())
	return 0
}

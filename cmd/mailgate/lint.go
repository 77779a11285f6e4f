package main

import "io"

func runLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("lint", "[-c FILE | -p POLICY ...]", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return notYet("lint", "issue 4", stderr)
}

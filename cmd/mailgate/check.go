package main

import "io"

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", "[-c FILE | -p POLICY ...] [--json] [--out DIR] [--explain] PATH...", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return notYet("check", "issue 4", stderr)
}

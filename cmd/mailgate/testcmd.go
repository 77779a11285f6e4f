package main

import "io"

func runTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("test", "[-p POLICY ...]", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return notYet("test", "issue 4", stderr)
}

package main

import "io"

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "[-c mailgate.yaml] [--listen ADDR] [--upstream URL] [-p POLICY ...]", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return notYet("serve", "issue 5", stderr)
}

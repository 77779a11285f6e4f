package main

import "io"

func runParse(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("parse", "[--json] FILE.eml", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	return notYet("parse", "issue 3", stderr)
}

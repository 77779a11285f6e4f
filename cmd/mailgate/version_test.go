package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "mailgate ") || !strings.Contains(out.String(), runtime.Version()) {
			t.Errorf("%v: exit %d, %q %q", args, code, out.String(), errb.String())
		}
	}
	var out bytes.Buffer
	run([]string{"help"}, &out, &out)
	for _, c := range []string{"quarantine", "version"} {
		if !strings.Contains(out.String(), "  "+c+" ") {
			t.Errorf("help lacks %s:\n%s", c, out.String())
		}
	}
}

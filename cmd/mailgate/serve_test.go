package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeUsageAndConfigErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runServe([]string{"--bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	errb.Reset()
	if code := runServe([]string{"extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	os.WriteFile(cfg, []byte("upstream: smtp://127.0.0.1:25\nlimits:\n  recipient: 5\n"), 0o600)
	errb.Reset()
	if code := runServe([]string{"-c", cfg}, &out, &errb); code != 1 {
		t.Errorf("bad config: exit %d, want 1", code)
	}
	if want := cfg + ":3:3: field recipient not found"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	errb.Reset()
	if code := runServe([]string{"--upstream", "ftp://x", "--listen", "127.0.0.1:0"}, &out, &errb); code != 1 {
		t.Errorf("bad --upstream: exit %d, want 1", code)
	}
	errb.Reset()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: x\n    when: 'Nope'\n"), 0o600)
	if code := runServe([]string{"-p", bad, "--listen", "127.0.0.1:0"}, &out, &errb); code != 1 {
		t.Errorf("bad policy: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "bad.yaml:3:") {
		t.Errorf("policy error without position: %q", errb.String())
	}
}

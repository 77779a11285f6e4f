package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailgate.yaml")
	src := `listen: ["127.0.0.1:2526", "127.0.0.1:2527"]
hostname: mx.example.org
upstream: smtp://127.0.0.1:10025
xforward: false
trusted_forwarders: [10.0.0.0/8, 192.0.2.1]
limits: {message_size: 10MiB, recipients: 5, spool_memory: 64KiB}
timeouts: {command: 1m, data_total: 90s}
bare_newline: normalize
spool_dir: spool
policies: [p/a.yaml, /abs/b.yaml]
lists: {internal: lists/internal.txt}
log: {format: json, level: debug}
metrics_listen: 127.0.0.1:9025
`
	c, err := ParseConfig(path, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Listen, ",") != "127.0.0.1:2526,127.0.0.1:2527" || c.Hostname != "mx.example.org" || c.XForward {
		t.Errorf("listen/hostname/xforward: %+v", c)
	}
	if c.Limits.MessageSize != 10<<20 || c.Limits.Recipients != 5 || c.Limits.SpoolMemory != 64<<10 ||
		c.Limits.Connections != DefaultConfig().Limits.Connections {
		t.Errorf("limits %+v", c.Limits)
	}
	if c.Timeouts.Command != time.Minute || c.Timeouts.DataTotal != 90*time.Second || c.Timeouts.DataIdle != 5*time.Minute {
		t.Errorf("timeouts %+v", c.Timeouts)
	}
	if c.SpoolDir != filepath.Join(dir, "spool") || c.Policies[0] != filepath.Join(dir, "p/a.yaml") ||
		c.Policies[1] != "/abs/b.yaml" || c.Lists["internal"] != filepath.Join(dir, "lists/internal.txt") {
		t.Errorf("paths: %q %q %q", c.SpoolDir, c.Policies, c.Lists)
	}
	if len(c.TrustedForwarders) != 2 || c.TrustedForwarders[1].String() != "192.0.2.1/32" {
		t.Errorf("trusted_forwarders %v", c.TrustedForwarders)
	}
	if c.BareNewline != "normalize" || c.LogFormat != "json" || c.LogLevel != "debug" || c.EmbeddedPolicy != "" {
		t.Errorf("enums %+v", c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "upstream: smtp://127.0.0.1:25\nlimits:\n  mesage_size: 1MiB\n", "x.yaml:3:3: field mesage_size not found"},
		{"bad size", "upstream: smtp://127.0.0.1:25\nlimits: {message_size: 10 parsecs}\n", "x.yaml:2:24: bad size"},
		{"bad duration", "upstream: smtp://127.0.0.1:25\ntimeouts:\n  command: soon\n", "x.yaml:3:12: bad duration"},
		{"bad enum", "upstream: smtp://127.0.0.1:25\nbare_newline: accept\n", `x.yaml:2:15: bare_newline: "accept" is not one of reject, normalize`},
		{"no upstream", "hostname: x\n", "x.yaml:1:1: upstream: required"},
		{"bad upstream", "upstream: http://x\n", "x.yaml:1:11: upstream:"},
		{"wrong type", "upstream: smtp://127.0.0.1:25\nlimits: {recipients: many}\n", "x.yaml:2:22: cannot unmarshal"},
		{"syntax", "upstream: [\n", "x.yaml:"},
		{"auth without tls", "upstream: smtp://127.0.0.1:25\nauth: relay\n", "x.yaml:2:7: auth: relay needs tls"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("x.yaml", []byte(tc.src))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a ConfigError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "64KiB": 64 << 10, "50MiB": 50 << 20, "1GiB": 1 << 30, "10MB": 10e6, "5 B": 5} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1XB", "MiB", "99999999999999999999GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestLoadConfigMissing(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err %v", err)
	}
	_ = os.Remove
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate"
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
	c, err := Parse(path, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Listen, ",") != "127.0.0.1:2526,127.0.0.1:2527" || c.Hostname != "mx.example.org" || c.XForward {
		t.Errorf("listen/hostname/xforward: %+v", c)
	}
	if c.Limits.MessageSize != 10<<20 || c.Limits.Recipients != 5 || c.Limits.SpoolMemory != 64<<10 ||
		c.Limits.Connections != Default().Limits.Connections {
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

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown key", "upstream: smtp://127.0.0.1:25\nlimits:\n  mesage_size: 1MiB\n", "x.yaml:3:3: limits.mesage_size: unknown key (did you mean message_size?)"},
		{"bad size", "upstream: smtp://127.0.0.1:25\nlimits: {message_size: 10 parsecs}\n", "x.yaml:2:24: bad size"},
		{"bad duration", "upstream: smtp://127.0.0.1:25\ntimeouts:\n  command: soon\n", "x.yaml:3:12: bad duration"},
		{"bad enum", "upstream: smtp://127.0.0.1:25\nbare_newline: accept\n", `x.yaml:2:15: bare_newline: "accept" is not one of reject, normalize`},
		{"no upstream", "hostname: x\n", "x.yaml:1:1: upstream: required"},
		{"bad upstream", "upstream: http://x\n", "x.yaml:1:11: upstream:"},
		{"wrong type", "upstream: smtp://127.0.0.1:25\nlimits: {recipients: many}\n", `x.yaml:2:22: limits.recipients: want a whole number, got "many"`},
		{"syntax", "upstream: [\n", "x.yaml:"},
		{"unknown top-level key", "upstream: smtp://127.0.0.1:25\npolices: [a.yaml]\n", "x.yaml:2:1: polices: unknown key (did you mean policies?)"},
		{"mapping for a list", "upstream: smtp://127.0.0.1:25\ntrusted_forwarders: {a: b}\n", "x.yaml:2:21: trusted_forwarders: want a list, got a mapping"},
		{"list for a mapping", "upstream: smtp://127.0.0.1:25\nlimits: [1]\n", "x.yaml:2:9: limits: want a mapping of keys (message_size, "},
		{"string for a bool", "upstream: smtp://127.0.0.1:25\nxclient: maybe\n", `x.yaml:2:10: xclient: want true or false, got "maybe"`},
		{"nested unknown key", "upstream: smtp://127.0.0.1:25\ntls: {cert: a, kee: b}\n", "x.yaml:2:16: tls.kee: unknown key (did you mean key?)"},
		{"auth without tls", "upstream: smtp://127.0.0.1:25\nauth: relay\n", "x.yaml:2:7: auth: relay needs tls"},
		{"negative mime_depth", "upstream: smtp://127.0.0.1:25\nlimits:\n  mime_depth: -1\n", "x.yaml:3:15: limits.mime_depth: -1 must be greater than 0"},
		{"zero message_size", "upstream: smtp://127.0.0.1:25\nlimits: {message_size: 0}\n", "x.yaml:2:24: limits.message_size: 0 must be greater than 0"},
		{"zero errors", "upstream: smtp://127.0.0.1:25\nlimits: {errors: 0}\n", "x.yaml:2:18: limits.errors: 0 must be greater than 0"},
		{"bad hostname", "upstream: smtp://127.0.0.1:25\nhostname: mx example.org\n", `x.yaml:2:11: hostname: "mx example.org" is not a domain name`},
		{"bad listen", "upstream: smtp://127.0.0.1:25\nlisten: [\"127.0.0.1\"]\n", `x.yaml:2:9: listen: "127.0.0.1": want host:port`},
		{"bad metrics_listen", "upstream: smtp://127.0.0.1:25\nmetrics_listen: 127.0.0.1:99999\n", `x.yaml:2:17: metrics_listen: "127.0.0.1:99999": want host:port`},
		{"bad milter_listen", "upstream: smtp://127.0.0.1:25\nmilter_listen: [\"unix:\", \"x\"]\n", `x.yaml:2:16: milter_listen: "unix:": want host:port (port 0-65535) or unix:/path`},
		{"nothing to serve", "upstream: smtp://127.0.0.1:25\nlisten: []\n", `x.yaml:2:9: listen: empty and no milter_listen: nothing to serve`},
		{"bad list name", "upstream: smtp://127.0.0.1:25\nlists: {1bad: l.txt}\n", `x.yaml:2:15: lists: "1bad" is not a valid list name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(tc.src))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %v, want a Error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// TestParseConfigLimitsPositive: every limits.* key refuses 0 and -1 (a
// non-positive bound once switched the check off) and keeps its positive
// values.
func TestParseConfigLimitsPositive(t *testing.T) {
	keys := []string{"message_size", "recipients", "connections", "line_length", "mime_depth", "mime_parts",
		"header_bytes", "archive_depth", "archive_entries", "spool_memory", "spool_memory_total", "inspect_spill",
		"errors", "decompressed_bytes", "archive_dict"}
	for _, k := range keys {
		for _, v := range []string{"0", "-1"} {
			_, err := Parse("x.yaml", []byte("upstream: smtp://127.0.0.1:25\nlimits:\n  "+k+": "+v+"\n"))
			if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:3:") {
				t.Errorf("limits.%s: %s: err %v, want a positioned error", k, v, err)
			}
		}
		if _, err := Parse("x.yaml", []byte("upstream: smtp://127.0.0.1:25\nlimits:\n  "+k+": 7\n")); err != nil {
			t.Errorf("limits.%s: 7: %v", k, err)
		}
	}
}

func TestValidHostname(t *testing.T) {
	for _, h := range []string{"mx.example.org", "localhost", "a-b.c0.example", "[192.0.2.1]", "[IPv6:2001:db8::1]", "MX1.Example.ORG"} {
		if !validHostname(h) {
			t.Errorf("%q refused", h)
		}
	}
	for _, h := range []string{"mx example.org", "mx..example.org", "-mx.example.org", "mx-.example.org", "mx.example.org.",
		"192.0.2.1]", "[192.0.2.300]", "[2001:db8::1]", "[IPv6:192.0.2.1]", "mx_1.example.org", "mx.example.org\r\n250 x",
		strings.Repeat("a", 64) + ".example"} {
		if validHostname(h) {
			t.Errorf("%q accepted", h)
		}
	}
}

// TestParseConfigPolicies: `policies:` absent means the embedded default
// pack, `policies: []` none, a list its files resolved from the file's
// directory.
func TestParseConfigPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, src, embedded string
		policies            []string
		none                bool
	}{
		{"absent", "", DefaultEmbeddedPolicy, nil, false},
		{"null", "policies:\n", DefaultEmbeddedPolicy, nil, false},
		{"empty list", "policies: []\n", "", nil, true},
		{"files", "policies: [a.yaml, /abs/b.yaml]\n", "", []string{"sub/a.yaml", "/abs/b.yaml"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("sub/mailgate.yaml", []byte("upstream: smtp://127.0.0.1:25\n"+tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if c.EmbeddedPolicy != tc.embedded || strings.Join(c.Policies, ",") != strings.Join(tc.policies, ",") || c.RunsNoPolicy() != tc.none {
				t.Errorf("embedded %q policies %q none %v; want %q %q %v", c.EmbeddedPolicy, c.Policies, c.RunsNoPolicy(), tc.embedded, tc.policies, tc.none)
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
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err %v", err)
	}
	_ = os.Remove
}

// TestLoadPoliciesRelativeConfig: serve -c sub/mailgate.yaml, run from
// the directory above sub, reads sub/local.yaml and sub/l.txt (paths
// resolved from the config's directory exactly once, not sub/sub/...).
func TestLoadPoliciesRelativeConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"sub/mailgate.yaml": "upstream: maildir:mail\npolicies: [local.yaml]\nlists: {vip: l.txt}\n",
		"sub/local.yaml":    "rules:\n  - name: local-vip\n    when: 'Envelope.FromDomain in Lists.vip'\n    score: 1\n",
		"sub/l.txt":         "example.org\n",
	}
	for name, src := range files {
		if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := Load("sub/mailgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := LoadPolicies(cfg, mailgate.Tree, nil)
	if err != nil {
		t.Fatalf("loading sub/mailgate.yaml's policies: %v", err)
	}
	if strings.Join(set.RuleNames(), ",") != "local-vip" {
		t.Fatalf("rules %v", set.RuleNames())
	}
}

// TestParseMilterOnly: `listen: []` with milter_listen runs milter-only
// (no SMTP listener, and no upstream needed: the MTA delivers); TCP and
// unix socket addresses are both accepted.
func TestParseMilterOnly(t *testing.T) {
	c, err := Parse("x.yaml", []byte("listen: []\nmilter_listen: [\"127.0.0.1:8891\", \"unix:/run/mailgate/milter.sock\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 0 || len(c.MilterListen) != 2 || c.MilterListen[1] != "unix:/run/mailgate/milter.sock" {
		t.Errorf("listen %q milter_listen %q", c.Listen, c.MilterListen)
	}
	c, err = Parse("x.yaml", []byte("upstream: smtp://127.0.0.1:25\nmilter_listen: 127.0.0.1:8891\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Listen) != 1 || len(c.MilterListen) != 1 {
		t.Errorf("both: listen %q milter_listen %q", c.Listen, c.MilterListen)
	}
}

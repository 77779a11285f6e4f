package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClamdStateSections: clamd: and state: are read, defaulted and
// validated in the file's words.
func TestClamdStateSections(t *testing.T) {
	c, err := Parse("m.yaml", []byte("upstream: smtp://127.0.0.1:10025\nclamd: {address: \"tcp://127.0.0.1:3310\"}\nstate: {redis: \"redis://127.0.0.1:6379/0\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Clamd == nil || c.Clamd.Address != "tcp://127.0.0.1:3310" || c.Clamd.Timeout != 60*time.Second || c.Clamd.MaxSize != 25<<20 {
		t.Errorf("clamd %+v", c.Clamd)
	}
	if c.State == nil || c.State.Redis != "redis://127.0.0.1:6379/0" {
		t.Errorf("state %+v", c.State)
	}
	c, err = Parse("m.yaml", []byte("upstream: smtp://127.0.0.1:10025\nclamd: {address: unix:/run/clamav/clamd.ctl, timeout: 5s, max_size: 10MiB}\n"))
	if err != nil || c.Clamd.Timeout != 5*time.Second || c.Clamd.MaxSize != 10<<20 || c.State != nil {
		t.Errorf("unix clamd: %+v %v", c, err)
	}
	c, err = Parse("m.yaml", []byte("upstream: smtp://127.0.0.1:10025\n"))
	if err != nil || c.Clamd != nil || c.State != nil {
		t.Errorf("absent sections: %+v %+v %v", c.Clamd, c.State, err)
	}
	for src, want := range map[string]string{
		"clamd: {address: 127.0.0.1:3310}":         "m.yaml:2:18: clamd.address: clamd address \"127.0.0.1:3310\": want tcp://host:port",
		"clamd: {timeout: 5s}":                     "m.yaml:2:8: clamd.address: required",
		"clamd: {address: tcp://h:1, timeout: 0}":  "bad duration \"0\"",
		"clamd: {address: tcp://h:1, max_size: 0}": "clamd.max_size: 0 must be greater than 0",
		"clamd: {adress: tcp://h:1}":               "did you mean address?",
		"state: {redis: http://x}":                 "state.redis:",
		"state: {}":                                "state.redis: required",
		"state: {reddis: redis://x}":               "did you mean redis?",
	} {
		_, err := Parse("m.yaml", []byte("upstream: smtp://127.0.0.1:10025\n"+src+"\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}

// TestVirusNeedsClamd: a configuration whose policies read Virus without a
// clamd: section is refused by every command that loads it (serve,
// check -c, lint -c), and accepted with one.
func TestVirusNeedsClamd(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "av.yaml")
	os.WriteFile(pol, []byte("rules:\n  - name: virus\n    when: 'Virus.Found'\n    action: reject\n"), 0o644)
	base := "upstream: smtp://127.0.0.1:10025\npolicies: [av.yaml]\n"
	c, err := Parse(filepath.Join(dir, "m.yaml"), []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicies(c, nil, nil); err == nil || !strings.Contains(err.Error(), "no clamd: section") {
		t.Errorf("Virus without clamd: err = %v", err)
	}
	c, err = Parse(filepath.Join(dir, "m.yaml"), []byte(base+"clamd: {address: tcp://127.0.0.1:3310}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicies(c, nil, nil); err != nil {
		t.Errorf("Virus with clamd: %v", err)
	}
}

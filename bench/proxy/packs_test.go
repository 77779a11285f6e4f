package main

import (
	"os"
	"strings"
	"testing"
)

const spamSample = `# spam-basics
rules:
  - name: missing-message-id
    when: 'not HasHeader("Message-ID")'
    score: 1
  - name: client-rate
    stage: mail
    when: 'rate(Client.IP, "1m") > 30 || 100 <= rate(Envelope.From, "1h")'
  - name: nested
    when: 'Envelope.From != "" && rate("from:" + lower(Envelope.From), "1h") > 500'
    action: tempfail
    reply: "451 4.7.1 Slow down"
  - name: greylist-unknown
    stage: rcpt
    when: 'Score >= 2'
    action: greylist
    greylist: {delay: 5m}
  - name: grey-two
    action: greylist
    mode: enforce
tests:
  - message: ../testdata/benign/plain.eml
    expect: {verdict: accept}
`

func TestPatchSpamBasics(t *testing.T) {
	got, err := PatchSpamBasics(spamSample)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`rate(Client.IP, "1m") > ` + Raised,
		Raised + ` <= rate(Envelope.From, "1h")`,
		`rate("from:" + lower(Envelope.From), "1h") > ` + Raised,
		"  - name: greylist-unknown\n    mode: monitor\n    stage: rcpt",
		"  - name: grey-two\n    action: greylist\n    mode: monitor",
		"  - name: missing-message-id\n    when:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("patched lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"> 30", "100 <=", "> 500", "tests:", "plain.eml", "mode: enforce"} {
		if strings.Contains(got, gone) {
			t.Errorf("patched still has %q:\n%s", gone, got)
		}
	}
	if strings.Count(got, "mode: monitor") != 2 {
		t.Errorf("want 2 monitor rules:\n%s", got)
	}
}

func TestPatchSpamBasicsFailsLoudly(t *testing.T) {
	if _, err := PatchSpamBasics("rules:\n  - name: a\n    action: greylist\n"); err == nil || !strings.Contains(err.Error(), "rate") {
		t.Errorf("no rate(): err %v", err)
	}
	if _, err := PatchSpamBasics("rules:\n  - name: a\n    when: 'rate(Client.IP, \"1m\") > 5'\n"); err == nil || !strings.Contains(err.Error(), "greylist") {
		t.Errorf("no greylist: err %v", err)
	}
	if _, err := PatchSpamBasics("rules:\n  - name: a\n    when: 'rate(Client.IP, \"1m\") > Score'\n    action: greylist\n"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("rate compared with no number: err %v", err)
	}
}

// TestPatchShippedSpamBasics keeps the patch in step with the pack: when
// spam-basics.yaml changes so that its thresholds are no longer found, this
// fails instead of the full benchmark measuring deferrals.
func TestPatchShippedSpamBasics(t *testing.T) {
	src, err := os.ReadFile("../../policies/spam-basics.yaml")
	if err != nil {
		t.Skipf("policies/spam-basics.yaml not there yet: %v", err)
	}
	got, err := PatchSpamBasics(string(src))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(got, "rate(") != strings.Count(got, Raised) {
		t.Errorf("some rate() threshold not raised:\n%s", got)
	}
	if strings.Contains(got, "\ntests:") {
		t.Error("tests: section kept")
	}
}

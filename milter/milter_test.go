package milter

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"mailgate/mimeparse"
)

var benchPacks = []string{"default.yaml", "dangerous-attachments.yaml", "office-macros.yaml", "compliance-headers.yaml"}

func fieldVals(fs []hf, name string) []string {
	var out []string
	for _, f := range fs {
		if strings.EqualFold(f.name, name) {
			out = append(out, f.value)
		}
	}
	return out
}

// Clean external mail is accepted with the compliance headers: X-External
// and X-Classification inserted at the top, Subject prefixed in place
// (values without a leading space when the MTA adds one, which go-milter's
// client does not negotiate away), the body untouched.
func TestMilterCleanGetsComplianceHeaders(t *testing.T) {
	_, addr := startMilter(t, testConfig(t, benchPacks, ""))
	raw := readFile(t, "testdata/benign/plain-text.eml")
	r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, raw)
	if r.stage != "" || r.act.Type != gomilter.ActionAccept {
		t.Fatalf("stopped at %q: %v", r.stage, r.act)
	}
	fs, body := deliver(t, raw, r)
	t.Logf("modifications:\n%s", modsString(r.mods))
	if got := fieldVals(fs, "X-External"); len(got) != 1 || got[0] != " yes" {
		t.Errorf("X-External: %q\n%s", got, modsString(r.mods))
	}
	if got := fieldVals(fs, "X-Classification"); len(got) != 1 || got[0] != " EXTERNAL; sender-domain=example.com" {
		t.Errorf("X-Classification: %q", got)
	}
	if got := fieldVals(fs, "Subject"); len(got) != 1 || !strings.HasPrefix(got[0], " [EXT] ") {
		t.Errorf("Subject: %q", got)
	}
	_, origBody := splitMsg(raw)
	if !bytes.Equal(body, origBody) {
		t.Errorf("body changed")
	}
	for _, m := range r.mods {
		if m.Type == gomilter.ActionReplaceBody {
			t.Errorf("a body replacement for header edits")
		}
	}
}

// An executable is refused at the end of the message with the policy's
// reply: code, enhanced status and text.
func TestMilterRejectsExecutableWithPolicyReply(t *testing.T) {
	_, addr := startMilter(t, testConfig(t, benchPacks, ""))
	r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, readFile(t, "testdata/attacks/exe-attachment.eml"))
	if r.stage != "" || r.act.Type != gomilter.ActionRejectWithCode {
		t.Fatalf("stage %q act %v", r.stage, r.act)
	}
	if r.act.SMTPCode != 550 || !strings.HasPrefix(r.act.SMTPReply, "550 5.7.1 ") {
		t.Errorf("reply %d %q", r.act.SMTPCode, r.act.SMTPReply)
	}
	if len(r.mods) != 0 {
		t.Errorf("modifications on a refused message: %s", modsString(r.mods))
	}
}

// A macro document is stripped: the body replaced by the splicer's output
// (the same bytes rules.Rewrite gives the proxy), the notice header added.
func TestMilterStripsMacroDocument(t *testing.T) {
	_, addr := startMilter(t, testConfig(t, []string{"office-macros.yaml"}, ""))
	raw := readFile(t, "testdata/attacks/docm-macros.eml")
	r := sendMsg(t, addr, "sender@corp.example.org", []string{"bob@example.net"}, raw)
	if r.stage != "" || r.act.Type != gomilter.ActionAccept {
		t.Fatalf("stage %q act %v", r.stage, r.act)
	}
	fs, body := deliver(t, raw, r)
	t.Logf("modifications:\n%s", modsString(r.mods))
	if got := fieldVals(fs, "X-Mailgate-Removed"); len(got) != 1 {
		t.Errorf("X-Mailgate-Removed: %q", got)
	}
	if !bytes.Contains(body, []byte("was removed from this message")) || bytes.Contains(body, []byte("vbaProject")) && bytes.Equal(body, raw) {
		t.Errorf("body not stripped:\n%.600s", body)
	}
	_, orig := splitMsg(raw)
	if len(body) >= len(orig) {
		t.Errorf("body %d bytes, original %d", len(body), len(orig))
	}
}

// rcpt_add and rcpt_remove become recipient actions; quarantine becomes
// the MTA's hold plus mailgate's own copy; discard is discard.
func TestMilterRecipientsQuarantineDiscard(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	os.WriteFile(pol, []byte(`rules:
  - name: archive-copy
    when: 'Envelope.From == "a@example.com"'
    recipients: {add: [archive@example.net], remove: [carol@example.net]}
  - name: hold-invoices
    when: 'Envelope.From == "q@example.com"'
    action: quarantine
  - name: drop
    when: 'Envelope.From == "d@example.com"'
    action: discard
  - name: refuse-rcpt
    stage: rcpt
    when: 'Rcpt == "nobody@example.net"'
    action: reject
    reply: "550 5.1.1 No such user here"
`), 0o644)
	cfg := testConfig(t, []string{pol}, "")
	_, addr := startMilter(t, cfg)
	raw := readFile(t, "testdata/benign/plain-text.eml")

	r := sendMsg(t, addr, "a@example.com", []string{"bob@example.net", "carol@example.net"}, raw)
	var got []string
	for _, m := range r.mods {
		got = append(got, m.String())
	}
	want := []string{`DelRcpt "<carol@example.net>"`, `AddRcpt "<archive@example.net>" ""`}
	if strings.Join(got, "|") != strings.Join(want, "|") || r.act.Type != gomilter.ActionAccept {
		t.Errorf("rcpt edits: %q %v, want %q", got, r.act, want)
	}

	r = sendMsg(t, addr, "q@example.com", []string{"bob@example.net"}, raw)
	if r.act.Type != gomilter.ActionAccept || len(r.mods) != 1 || r.mods[0].Type != gomilter.ActionQuarantine {
		t.Errorf("quarantine: %v %s", r.act, modsString(r.mods))
	}
	ents, _ := os.ReadDir(cfg.QuarantineDir)
	var eml, js int
	for _, e := range ents {
		switch filepath.Ext(e.Name()) {
		case ".eml":
			eml++
		case ".json":
			js++
		}
	}
	if eml != 1 || js != 1 {
		t.Errorf("quarantine dir holds %d .eml, %d .json", eml, js)
	}

	r = sendMsg(t, addr, "d@example.com", []string{"bob@example.net"}, raw)
	if r.act.Type != gomilter.ActionDiscard {
		t.Errorf("discard: %v", r.act)
	}

	r = sendMsg(t, addr, "x@example.com", []string{"nobody@example.net"}, raw)
	if r.stage != "rcpt" || r.act.SMTPReply != "550 5.1.1 No such user here" {
		t.Errorf("rcpt refusal: %q %v", r.stage, r.act)
	}
}

// A local failure (the spool cannot spill to its directory) tempfails
// with 451 4.3.0, never passes: milter_default_action is not the safety
// net.
func TestMilterLocalFailureTempfails(t *testing.T) {
	cfg := testConfig(t, benchPacks, "limits: {spool_memory: 1}\n")
	cfg.SpoolDir = filepath.Join(t.TempDir(), "missing", "dir")
	_, addr := startMilter(t, cfg)
	r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, readFile(t, "testdata/benign/plain-text.eml"))
	if r.act.Type != gomilter.ActionRejectWithCode || !strings.HasPrefix(r.act.SMTPReply, "451 4.3.0") {
		t.Errorf("got %v", r.act)
	}
}

// milter_listen: a unix socket path works as well as TCP.
func TestMilterUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "m.sock")
	cfg := testConfig(t, benchPacks, "")
	cfg.MilterListen = []string{"unix:" + sock}
	srv, err := NewServer(cfg, Options{LoadPolicies: loader()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	if fi, err := os.Stat(sock); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v: want 0666, for an MTA running as another user", fi.Mode())
	}
	cl := gomilter.NewClient("unix", sock)
	s, err := cl.Session(gomilter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	act, err := s.Conn("h", gomilter.FamilyInet, 1, "192.0.2.1")
	if err != nil || act.Type != gomilter.ActionContinue {
		t.Errorf("connect over unix socket: %v %v", act, err)
	}
	s.Close()
}

// A stage without rules cannot refuse: the MTA is told not to wait for
// its reply (one round trip less per stage); a stage with rules keeps it.
func TestMilterNoReplyForStagesWithoutRules(t *testing.T) {
	check := func(cfgPacks []string, wantNoRcptReply bool) {
		_, addr := startMilter(t, testConfig(t, cfgPacks, ""))
		s, err := gomilter.NewClient("tcp", addr).Session(gomilter.NewMacroBag())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, o := range []gomilter.OptProtocol{gomilter.OptNoConnReply, gomilter.OptNoHeloReply, gomilter.OptNoMailReply} {
			if !s.ProtocolOption(o) {
				t.Errorf("%v: %v not negotiated", cfgPacks, o)
			}
		}
		if got := s.ProtocolOption(gomilter.OptNoRcptReply); got != wantNoRcptReply {
			t.Errorf("%v: OptNoRcptReply %v, want %v", cfgPacks, got, wantNoRcptReply)
		}
	}
	check(benchPacks, true)
	pol := filepath.Join(t.TempDir(), "rcpt.yaml")
	os.WriteFile(pol, []byte("rules:\n  - name: r\n    stage: rcpt\n    when: 'Rcpt == \"x@example.net\"'\n    action: reject\n"), 0o644)
	check([]string{pol}, false)
}

// A field past what the parse indexes (5,000 fields) is still edited: the
// plan is made over every field (rules.PlanBlock), as rules.Rewrite does
// for the proxy, so a spoofed field late in a huge header is deleted.
func TestMilterEditsPastTheFieldIndex(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pol, []byte("rules:\n  - name: drop-spoof\n    when: 'true'\n    headers: {remove: [X-Spoof]}\n"), 0o644)
	_, addr := startMilter(t, testConfig(t, []string{pol}, ""))
	var b strings.Builder
	b.WriteString("From: a@example.com\r\nSubject: many\r\n")
	for i := 0; i < 5500; i++ {
		b.WriteString("X-Filler: x\r\n")
	}
	b.WriteString("X-Spoof: yes\r\n\r\nbody\r\n")
	r := sendMsg(t, addr, "a@example.com", []string{"bob@example.net"}, []byte(b.String()))
	if r.act.Type != gomilter.ActionAccept || len(r.mods) != 1 || r.mods[0].Type != gomilter.ActionChangeHeader ||
		r.mods[0].HeaderName != "X-Spoof" || r.mods[0].HeaderIndex != 1 || r.mods[0].HeaderValue != "" {
		t.Errorf("got %v\n%s", r.act, modsString(r.mods))
	}
}

// A rule that reads SHA256 sees the parts' hashes: serve parses without
// hashing only when no rule reads SHA256 (mimeparse Limits.NoHash).
func TestMilterHashRule(t *testing.T) {
	raw := readFile(t, "testdata/attacks/exe-attachment.eml")
	msg, err := mimeparse.Parse(bytes.NewReader(raw), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	var sum string
	for _, p := range msg.Parts {
		if p.IsAttachment {
			sum = p.SHA256
		}
	}
	if len(sum) != 64 {
		t.Fatalf("no attachment hash in the test message: %q", sum)
	}
	pol := filepath.Join(t.TempDir(), "hash.yaml")
	src := "rules:\n  - name: known-bad\n    when: 'any(Attachments, .SHA256 == \"" + sum + "\")'\n    action: reject\n    reply: \"554 5.7.1 known bad attachment\"\n"
	if err := os.WriteFile(pol, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, addr := startMilter(t, testConfig(t, []string{pol}, ""))
	r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, raw)
	if r.act.Type != gomilter.ActionRejectWithCode || r.act.SMTPCode != 554 || !strings.Contains(r.act.SMTPReply, "known bad attachment") {
		t.Fatalf("stage %q act %v: want the hash rule's 554", r.stage, r.act)
	}
}

// A rule that reads Text sees the message's text: serve leaves Text out
// of the parse only when no rule reads it (rules.Set.TrimLimits).
func TestMilterTextRule(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "text.yaml")
	src := "rules:\n  - name: lunch\n    when: 'Text contains \"Lunch at noon\"'\n    action: reject\n    reply: \"550 5.7.1 no lunch\"\n"
	if err := os.WriteFile(pol, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	_, addr := startMilter(t, testConfig(t, []string{pol}, ""))
	r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, readFile(t, "testdata/benign/plain-text.eml"))
	if r.act.Type != gomilter.ActionRejectWithCode || r.act.SMTPCode != 550 || !strings.Contains(r.act.SMTPReply, "no lunch") {
		t.Fatalf("stage %q act %v: want the text rule's 550", r.stage, r.act)
	}
}

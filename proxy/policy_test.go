package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mailgate/quarantine"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// fakeEngine decides with a Go function; it records the facts it saw.
type fakeEngine struct {
	mu     sync.Mutex
	decide func(stage rules.Stage, f *rules.Facts) rules.Verdict
	seen   []rules.Facts
}

func (e *fakeEngine) NewEvaluator() Evaluator { return e }
func (e *fakeEngine) RuleNames() []string     { return []string{"fake"} }
func (e *fakeEngine) Rewrite(w io.Writer, raw io.Reader, msg *mimeparse.Message, ed *rules.Edits) (int64, error) {
	return rules.Rewrite(w, raw, msg, ed)
}
func (e *fakeEngine) Eval(stage rules.Stage, f *rules.Facts) rules.Verdict {
	e.mu.Lock()
	e.seen = append(e.seen, *f)
	e.mu.Unlock()
	if e.decide == nil {
		return rules.Verdict{Action: rules.ActionContinue}
	}
	return e.decide(stage, f)
}

func reject(rule string, rp Reply) rules.Verdict {
	return rules.Verdict{Action: rules.ActionReject, Rule: rule, Rules: []string{rule}, Reply: rp}
}

func TestPolicyRejectAtData(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st == rules.StageData && strings.Contains(f.Msg.Header("Subject"), "bad") {
			return reject("no-bad", r(550, 5, 7, 1, "Executable attachments are not accepted"))
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	addr, _, lg := startServer(t, testConfig(t, up.url()), eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(strings.Replace(cleanMsg, "hi", "bad", 1)))
	if rp != "550 5.7.1 Executable attachments are not accepted" {
		t.Fatalf("final reply %q", rp)
	}
	// The session goes on: the next message passes.
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("second message: %q", rp)
	}
	c.cmd("QUIT", "221")
	txs := up.transactions()
	if len(txs) != 1 || string(txs[0].Data) != cleanMsg {
		t.Fatalf("upstream saw %d transactions (%+v), want only the clean one", len(txs), txs)
	}
	cmds := strings.Join(up.commands(), "\n")
	if strings.Count(cmds, "DATA") != 1 || !strings.Contains(cmds, "RSET") {
		t.Errorf("upstream commands:\n%s", cmds)
	}
	waitFor(t, "log line", func() bool {
		return strings.Contains(lg.String(), `"verdict":"reject"`) && strings.Contains(lg.String(), `"rules":["no-bad"]`)
	})
}

func TestPolicyStages(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		switch {
		case st == rules.StageHelo && f.Client.HELO == "evil.test":
			return reject("helo", r(550, 5, 7, 1, "Go away"))
		case st == rules.StageMail && f.Envelope.From == "spam@example.org":
			return reject("mail", Reply{})
		case st == rules.StageRcpt && f.Rcpt == "closed@example.net":
			return rules.Verdict{Action: rules.ActionTempfail, Rule: "rcpt", Rules: []string{"rcpt"},
				Reply: r(450, 4, 7, 1, "Greylisted")}
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	cfg := testConfig(t, up.url())
	cfg.TrustedForwarders = nil
	addr, _, _ := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO evil.test", "550 5.7.1 Go away")
	c.cmd("MAIL FROM:<a@example.org>", "503")
	c.cmd("EHLO good.test", "250")
	c.cmd("MAIL FROM:<spam@example.org>", "550 5.7.1 Message rejected by policy")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<closed@example.net>", "450 4.7.1 Greylisted")
	c.cmd("RCPT TO:<open@example.net>", "250")
	c.cmd("QUIT", "221")
	for _, l := range up.commands() {
		if strings.Contains(l, "closed@") || strings.Contains(l, "spam@") {
			t.Errorf("refused command relayed upstream: %q", l)
		}
	}
}

func TestPolicyAcceptSkipsLaterStages(t *testing.T) {
	up := newFakeUpstream(t)
	var dataSeen bool
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st == rules.StageMail {
			return rules.Verdict{Action: rules.ActionAccept, Rule: "trusted", Rules: []string{"trusted"}}
		}
		if st == rules.StageData {
			dataSeen = true
			return reject("never", Reply{})
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	addr, _, _ := startServer(t, testConfig(t, up.url()), eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	if dataSeen {
		t.Error("data stage ran after a mail-stage accept")
	}
}

func TestPolicyDiscardAndQuarantine(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st != rules.StageData {
			return rules.Verdict{Action: rules.ActionContinue}
		}
		switch f.Msg.Header("Subject") {
		case "discard":
			return rules.Verdict{Action: rules.ActionDiscard, Rule: "d", Rules: []string{"d"}}
		case "quarantine":
			return rules.Verdict{Action: rules.ActionQuarantine, Rule: "q", Rules: []string{"q"}}
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	cfg := testConfig(t, up.url())
	addr, _, _ := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	for _, subj := range []string{"discard", "quarantine"} {
		msg := strings.Replace(cleanMsg, "hi", subj, 1)
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(msg)); !strings.HasPrefix(rp, "250 2.0.0") {
			t.Fatalf("%s: final reply %q", subj, rp)
		}
	}
	c.cmd("QUIT", "221")
	if txs := up.transactions(); len(txs) != 0 {
		t.Fatalf("upstream got %d messages, want none", len(txs))
	}
	ents, _ := os.ReadDir(cfg.QuarantineDir)
	if len(ents) != 2 {
		t.Fatalf("quarantine dir: %v", ents)
	}
	for _, e := range ents {
		fi, _ := e.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", e.Name(), fi.Mode())
		}
		if strings.HasSuffix(e.Name(), ".json") {
			data, _ := os.ReadFile(filepath.Join(cfg.QuarantineDir, e.Name()))
			var rec quarantine.Record
			if err := json.Unmarshal(data, &rec); err != nil || rec.Rule != "q" || rec.From != "a@example.org" ||
				fmt.Sprintf("%s.%d.json", rec.SHA256, rec.Time.UnixNano()) != e.Name() {
				t.Errorf("sidecar %s: %+v %v", e.Name(), rec, err)
			}
		} else {
			data, _ := os.ReadFile(filepath.Join(cfg.QuarantineDir, e.Name()))
			if !strings.Contains(string(data), "Subject: quarantine") {
				t.Errorf("quarantined message %q", data)
			}
			// Named by the SHA-256 of the message as received (computed
			// from the spool at quarantine time).
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:])+".eml" != e.Name() {
				t.Errorf("quarantined message named %s, its SHA-256 is %x", e.Name(), sum)
			}
		}
	}
}

func TestPolicyRewriteAndRecipients(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st != rules.StageData {
			return rules.Verdict{Action: rules.ActionContinue}
		}
		return rules.Verdict{Action: rules.ActionContinue, Rules: []string{"tag"}, Edits: rules.Edits{
			Headers:       []rules.HeaderEdit{{Op: "add", Name: "X-Tag", Value: "yes", Rule: "tag"}},
			SubjectPrefix: "[EXT] ",
			RcptAdd:       []string{"archive@example.net"},
			RcptRemove:    []string{"c@example.net"},
		}}
	}}
	addr, _, _ := startServer(t, testConfig(t, up.url()), eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net", "c@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	txs := up.transactions()
	if len(txs) != 1 {
		t.Fatalf("upstream transactions: %+v", txs)
	}
	data := string(txs[0].Data)
	if !strings.Contains(data, "X-Tag: yes\r\n") || !strings.Contains(data, "Subject: [EXT] hi\r\n") ||
		!strings.HasSuffix(data, "\r\nHello.\r\n.leading dot\r\n..two dots\r\nend\r\n") {
		t.Errorf("rewritten message %q", data)
	}
	if got := strings.Join(txs[0].Rcpts, ","); got != "b@example.net,archive@example.net" {
		t.Errorf("upstream recipients %q", got)
	}
}

// TestEditsBeforeAccept: header edits a mail-stage rule made still apply
// when a later rule accepts (no data-stage rules run).
func TestEditsBeforeAccept(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		switch st {
		case rules.StageMail:
			return rules.Verdict{Action: rules.ActionContinue, Rules: []string{"tag"},
				Edits: rules.Edits{Headers: []rules.HeaderEdit{{Op: "add", Name: "X-Early", Value: "1", Rule: "tag"}}}}
		case rules.StageRcpt:
			return rules.Verdict{Action: rules.ActionAccept, Rule: "ok", Rules: []string{"ok"}}
		case rules.StageData:
			return reject("never", Reply{})
		}
		return rules.Verdict{Action: rules.ActionContinue}
	}}
	addr, _, _ := startServer(t, testConfig(t, up.url()), eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	if txs := up.transactions(); len(txs) != 1 || !strings.HasPrefix(string(txs[0].Data), "X-Early: 1\r\n") {
		t.Fatalf("upstream %+v", txs)
	}
}

// failingRewrite is an engine whose rewrite fails part way through.
type failingRewrite struct{ fakeEngine }

func (e *failingRewrite) NewEvaluator() Evaluator { return e }
func (e *failingRewrite) Rewrite(w io.Writer, raw io.Reader, msg *mimeparse.Message, ed *rules.Edits) (int64, error) {
	n, _ := io.CopyN(w, raw, 10)
	return n, errors.New("rewrite broke")
}

// TestPolicyRewriteFails: the rewritten message streams to the upstream as
// it is produced; a rewrite that fails part way answers the client 4xx and
// the upstream never sees an end of data, so nothing is delivered
// (invariant 1). The session goes on with a new upstream connection.
func TestPolicyRewriteFails(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &failingRewrite{fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st != rules.StageData || f.Msg.Header("Subject") != "rewrite me" {
			return rules.Verdict{Action: rules.ActionContinue}
		}
		return rules.Verdict{Action: rules.ActionContinue, Rules: []string{"tag"}, Edits: rules.Edits{
			Headers: []rules.HeaderEdit{{Op: "add", Name: "X-Tag", Value: "yes", Rule: "tag"}},
		}}
	}}}
	addr, _, _ := startServer(t, testConfig(t, up.url()), eng)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	bad := strings.Replace(cleanMsg, "Subject: hi", "Subject: rewrite me", 1)
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(bad)); !strings.HasPrefix(rp, "451") {
		t.Fatalf("failed rewrite: final reply %q, want 451", rp)
	}
	if txs := up.transactions(); len(txs) != 0 {
		t.Fatalf("upstream got %d messages from a failed rewrite", len(txs))
	}
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("next message: final reply %q", rp)
	}
	if txs := up.transactions(); len(txs) != 1 || string(txs[0].Data) != cleanMsg {
		t.Fatalf("upstream transactions after the failed rewrite: %+v", txs)
	}
}

// TestQuarantineRepeated: the same message quarantined twice is stored
// once, and each event keeps its own record (<sha256>.<ns>.json); the
// second event does not overwrite the first one's.
func TestQuarantineRepeated(t *testing.T) {
	up := newFakeUpstream(t)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st != rules.StageData {
			return rules.Verdict{Action: rules.ActionContinue}
		}
		return rules.Verdict{Action: rules.ActionQuarantine, Rule: "q", Rules: []string{"q"}}
	}}
	cfg := testConfig(t, up.url())
	addr, _, _ := startServer(t, cfg, eng)
	for _, from := range []string{"first@example.org", "second@example.org"} {
		c := dialClient(t, addr)
		c.cmd("EHLO client.test", "250")
		if rp := c.sendMail(from, []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250 2.0.0") {
			t.Fatalf("final reply %q", rp)
		}
		c.cmd("QUIT", "221")
	}
	sum := sha256.Sum256([]byte(cleanMsg))
	hash := hex.EncodeToString(sum[:])
	ents, _ := os.ReadDir(cfg.QuarantineDir)
	var emls int
	froms := map[string]string{}
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(cfg.QuarantineDir, e.Name()))
		switch {
		case e.Name() == hash+".eml":
			emls++
			if string(data) != cleanMsg {
				t.Errorf("stored message %q", data)
			}
		case strings.HasPrefix(e.Name(), hash+".") && strings.HasSuffix(e.Name(), ".json"):
			var rec quarantine.Record
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			if want := fmt.Sprintf("%s.%d.json", hash, rec.Time.UnixNano()); e.Name() != want {
				t.Errorf("record %s, want %s", e.Name(), want)
			}
			froms[rec.From] = rec.Session
		default:
			t.Errorf("unexpected file %s", e.Name())
		}
	}
	if emls != 1 || len(froms) != 2 || froms["first@example.org"] == "" || froms["second@example.org"] == "" ||
		froms["first@example.org"] == froms["second@example.org"] {
		t.Errorf("%d messages, records by sender %v; want 1 message and one record per event", emls, froms)
	}
}

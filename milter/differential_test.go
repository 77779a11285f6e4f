package milter

import (
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	gomilter "github.com/d--j/go-milter"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// TestMilterDifferential: every message under testdata/ that an MTA takes
// at the SMTP level (CRLF line ends: a bare CR or LF is refused by the
// proxy with 550 5.5.2 before any policy, and normalized by Postfix) goes
// through the milter, driven by go-milter's client as Postfix drives it,
// and through rules.Simulate (what check, the policy tests and the proxy's
// transaction object decide) with the same policies and envelope, on the
// message as the MTA passes it. Both must give the same data-stage
// verdict, reply, rules and delivered message: the header as a list of
// fields (the milter's actions applied as Postfix applies them), the body
// byte for byte. The proxy (in process, over SMTP, with an upstream that
// keeps what it is sent) gets each message too, and must agree as well.
func TestMilterDifferential(t *testing.T) {
	var files []string
	filepath.WalkDir(filepath.Join(repo(t), "testdata"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
			files = append(files, p)
		}
		return nil
	})
	packSets := map[string][]string{
		"bench-packs":  benchPacks,
		"strip-macros": {"office-macros.yaml", "compliance-headers.yaml"},
	}
	for name, packs := range packSets {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, packs, "")
			srv, addr := startMilter(t, cfg)
			var mu sync.Mutex
			var gotVerdict string
			var gotRules []string
			srv.observe = func(v string, r []string) {
				mu.Lock()
				gotVerdict, gotRules = v, r
				mu.Unlock()
			}
			set, err := loader()(cfg)
			if err != nil {
				t.Fatal(err)
			}
			px := startProxy(t, cfg)
			compared, skipped, edited := 0, 0, 0
			verdicts := map[string]int{}
			for _, f := range files {
				raw := readFileAbs(t, f)
				if bareNewline(raw) {
					skipped++
					continue
				}
				rel, _ := filepath.Rel(repo(t), f)
				fields, body := mtaView(raw)
				if len(body) > 0 && !bytes.HasSuffix(body, []byte("\r\n")) {
					body = append(body, "\r\n"...) // SMTP ends the data with a line break
				}
				canon := canonical(fields, body)

				// rules.Simulate on the same bytes.
				msg, perr := mimeparse.Parse(bytes.NewReader(canon), cfg.MimeLimits())
				if perr != nil {
					t.Errorf("%s: parse: %v", rel, perr)
					continue
				}
				sim := rules.Simulate(set.NewEvaluator(), rules.SimInput{
					Client: rules.Client{IP: "192.0.2.7", Port: 40000, HELO: "client.example.com", Listener: "127.0.0.1:25"},
					From:   "sender@example.com", Rcpts: []string{"bob@example.net"}, Msg: msg, Size: len(canon),
				})
				want := string(sim.Decision.Action)
				var wantOut []byte
				if sim.Decision.Action == rules.ActionAccept {
					var b bytes.Buffer
					if _, err := rules.Rewrite(&b, bytes.NewReader(canon), msg, sim.Tx.Edits()); err != nil {
						t.Errorf("%s: rewrite: %v", rel, err)
						continue
					}
					wantOut = b.Bytes()
				}

				// The milter.
				mu.Lock()
				gotVerdict, gotRules = "", nil
				mu.Unlock()
				r := sendMsg(t, addr, "sender@example.com", []string{"bob@example.net"}, canon)
				mu.Lock()
				verdict, matched := gotVerdict, gotRules
				mu.Unlock()
				got := milterVerdict(r)
				compared++
				verdicts[want]++
				if got != want || verdict != want {
					t.Errorf("%s: milter %s (logged %s), Simulate %s (rules %v)", rel, got, verdict, want, sim.Tx.Rules())
					continue
				}
				if !slices.Equal(matched, sim.Tx.Rules()) {
					t.Errorf("%s: milter rules %v, Simulate %v", rel, matched, sim.Tx.Rules())
				}
				if sim.Decision.Refused() {
					if wantReply := sim.Decision.Reply.String(); r.act.SMTPReply != wantReply {
						t.Errorf("%s: milter reply %q, Simulate %q", rel, r.act.SMTPReply, wantReply)
					}
				}
				// The proxy.
				pv, prules, preply, pout := px.send(t, "sender@example.com", "bob@example.net", canon)
				if pv != want || !slices.Equal(prules, sim.Tx.Rules()) {
					t.Errorf("%s: proxy %s %v, Simulate %s %v", rel, pv, prules, want, sim.Tx.Rules())
				}
				if sim.Decision.Refused() && preply != sim.Decision.Reply.String() {
					t.Errorf("%s: proxy reply %q, Simulate %q", rel, preply, sim.Decision.Reply.String())
				}
				if wantOut != nil && !bytes.Equal(pout, wantOut) {
					t.Errorf("%s: the proxy relayed other bytes than rules.Rewrite gives", rel)
				}
				if wantOut == nil {
					continue
				}
				gotFields, gotBody := deliver(t, canon, r)
				wantFields, wantBody := fieldsOf(wantOut)
				if len(r.mods) > 0 {
					edited++
				}
				if fa, fb := fieldList(gotFields), fieldList(wantFields); fa != fb {
					t.Errorf("%s: header fields differ\nmilter:\n%s\nproxy/Simulate:\n%s\nactions:\n%s", rel, fa, fb, modsString(r.mods))
				}
				if !bytes.Equal(gotBody, wantBody) {
					t.Errorf("%s: body differs (%d vs %d bytes)", rel, len(gotBody), len(wantBody))
				}
			}
			t.Logf("%d messages compared (%v; %d with modifications), %d skipped (bare CR or LF)", compared, verdicts, edited, skipped)
			if compared < 50 {
				t.Errorf("only %d messages compared", compared)
			}
		})
	}
}

// milterVerdict names what the milter told the MTA at the end.
func milterVerdict(r result) string {
	if r.stage != "" {
		return "refused-at-" + r.stage
	}
	switch r.act.Type {
	case gomilter.ActionAccept, gomilter.ActionContinue:
		for _, m := range r.mods {
			if m.Type == gomilter.ActionQuarantine {
				return "quarantine"
			}
		}
		return "accept"
	case gomilter.ActionDiscard:
		return "discard"
	case gomilter.ActionRejectWithCode:
		if r.act.SMTPCode/100 == 4 {
			return "tempfail"
		}
		return "reject"
	case gomilter.ActionTempFail:
		return "tempfail"
	case gomilter.ActionReject:
		return "reject"
	}
	return r.act.String()
}

// fieldList renders fields one a line, the value's leading white space
// and line-break style aside (an MTA puts the space after the colon).
func fieldList(fs []hf) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s: %s\n", f.name, strings.ReplaceAll(strings.TrimLeft(f.value, " \t"), "\r\n", "\n"))
	}
	return b.String()
}

// bareNewline reports a CR or LF outside a CRLF pair.
func bareNewline(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}

func readFileAbs(t testing.TB, p string) []byte {
	t.Helper()
	b, err := readAll(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

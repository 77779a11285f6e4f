package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
	"mailgate/mimeparse"
)

// TestMilterProxyDifferentialPostfix sends every CRLF message of testdata/
// (a bare CR or LF is refused by the proxy with 550 5.5.2 before any
// policy) to two real stacks with the same policies: Postfix calling
// mailgate as its milter, and mailgate as a proxy in front of Postfix.
// Each must get the same reply, mailgate the same verdict and rules (its
// log), and the mailbox the same message: the body byte for byte, the
// header as a set of fields (the milter inserts above Postfix's own
// Received:, the proxy below it), Postfix's trace fields aside.
func TestMilterProxyDifferentialPostfix(t *testing.T) {
	root := e2e.RepoRoot(t)
	var files []string
	filepath.WalkDir(filepath.Join(root, "testdata"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
			files = append(files, p)
		}
		return nil
	})
	ms := startMilterStack(t)
	ps := startStack(t, fmt.Sprintf("lists: {internal_domains: %q}\n", filepath.Join(root, "policies", "lists", "internal_domains.txt")),
		"policies/default.yaml", "policies/office-macros.yaml", "policies/compliance-headers.yaml", milterPolicy)

	send := func(addr string, msg []byte) string {
		err := sendGo(t, addr, "sender@example.com", []string{"bob@example.net"}, msg)
		var te *textproto.Error
		if errors.As(err, &te) {
			return fmt.Sprintf("%d %s", te.Code, te.Msg)
		}
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		return "250"
	}
	compared, accepted := 0, 0
	for _, f := range files {
		raw := readAbs(t, f)
		if hasBareNewline(raw) {
			continue
		}
		rel, _ := filepath.Rel(root, f)
		nm, np := len(ms.pf.Delivered("inbox")), len(ps.pf.Delivered("inbox"))
		rm, rp := send(ms.pf.Addr, raw), send(ps.addr, raw)
		compared++
		if rm != rp {
			t.Errorf("%s: milter %q, proxy %q", rel, rm, rp)
			continue
		}
		if rm != "250" {
			continue
		}
		accepted++
		dm := ms.pf.WaitDelivered("inbox", nm+1, 15*time.Second)
		dp := ps.pf.WaitDelivered("inbox", np+1, 15*time.Second)
		if len(dm) != nm+1 || len(dp) != np+1 {
			t.Errorf("%s: delivered %d (milter) %d (proxy)", rel, len(dm)-nm, len(dp)-np)
			continue
		}
		// Postfix adds Date and Message-Id to a message without them
		// (its own values, which differ between the stacks).
		added := map[string]bool{"date": true, "message-id": true}
		mimeparse.ScanHeader(bytes.NewReader(raw), func(f mimeparse.Field) { delete(added, strings.ToLower(f.Name)) })
		fm, bm := delivered(dm[nm].Data, added)
		fp, bp := delivered(dp[np].Data, added)
		if !slices.Equal(fm, fp) {
			t.Errorf("%s: header fields differ\nmilter:\n%s\nproxy:\n%s", rel, strings.Join(fm, "\n"), strings.Join(fp, "\n"))
		}
		if !bytes.Equal(bm, bp) {
			t.Errorf("%s: bodies differ (%d and %d bytes)", rel, len(bm), len(bp))
		}
	}
	vm, vp := transactions(ms.proc.Output()), transactions(ps.proc.Output())
	if !slices.Equal(vm, vp) {
		t.Errorf("verdicts and rules differ:\nmilter %q\nproxy  %q", vm, vp)
	}
	t.Logf("%d messages through both stacks, %d delivered; %d transactions logged by each", compared, accepted, len(vm))
}

// delivered returns a delivered message's header fields, sorted, without
// Postfix's trace fields, and its body.
func delivered(b []byte, skip map[string]bool) ([]string, []byte) {
	var fs []string
	var end int64
	mimeparse.ScanHeader(bytes.NewReader(b), func(f mimeparse.Field) {
		end = f.End
		switch strings.ToLower(f.Name) {
		case "received", "return-path", "x-original-to", "delivered-to":
			return
		}
		if skip[strings.ToLower(f.Name)] {
			return
		}
		fs = append(fs, f.Name+":"+strings.TrimLeft(f.Raw, " \t"))
	})
	sort.Strings(fs)
	return fs, b[end:]
}

// transactions lists "verdict rules" of every transaction mailgate logged.
func transactions(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		var rec struct {
			Msg     string   `json:"msg"`
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "transaction" {
			out = append(out, rec.Verdict+" "+strings.Join(rec.Rules, ","))
		}
	}
	return out
}

func hasBareNewline(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
			return true
		}
	}
	return false
}

func readAbs(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

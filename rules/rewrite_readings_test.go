package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// TestStripFollowsReadings: over every fixture and corpus message, strip
// every attachment of every reading (mimeparse/readings.go); then no
// decoding of the output, by any reading of it and by a blind decode of
// every base64 and quoted-printable block, gives back a stripped file.
// Files whose bytes also make a part that was not stripped (the same text
// as the body) are left out: those bytes stay by right.
func TestStripFollowsReadings(t *testing.T) {
	inputs := rewriteInputs(t)
	lim := mimeparse.DefaultLimits()
	checked, withReadings := 0, 0
	for name, raw := range inputs {
		msg, err := mimeparse.Parse(bytes.NewReader(raw), lim)
		if err != nil || len(msg.Parts) == 0 {
			continue
		}
		ed := &Edits{}
		gone := map[string]string{} // SHA-256 → path
		readings := false
		for _, p := range msg.Attachments() {
			ed.Strip = append(ed.Strip, Strip{Path: p.Path, Filename: p.Filename, Rule: "t"})
			if p.Size > 0 {
				gone[p.SHA256] = p.Path
			}
			readings = readings || p.Reading != ""
		}
		if len(ed.Strip) == 0 {
			continue
		}
		kept := keptHashes(msg)
		for h := range gone {
			if kept[h] {
				delete(gone, h)
			}
		}
		var out bytes.Buffer
		if _, err := Rewrite(&out, bytes.NewReader(raw), msg, ed); err != nil {
			t.Errorf("%s: rewrite: %v", name, err)
			continue
		}
		checked++
		if readings {
			withReadings++
		}
		for h := range outputHashes(out.Bytes(), lim) {
			if path, ok := gone[h]; ok {
				t.Errorf("%s: stripped part %s (sha256 %.12s) is still in the output", name, path, h)
			}
		}
	}
	t.Logf("strip follows readings on %d messages (%d with parts in other readings)", checked, withReadings)
	if checked < 100 {
		t.Fatalf("only %d messages checked", checked)
	}
}

// keptHashes are the SHA-256s of the leaves that strip leaves in place
// (the body text).
func keptHashes(msg *mimeparse.Message) map[string]bool {
	att := map[*mimeparse.Part]bool{}
	for _, p := range msg.Attachments() {
		att[p] = true
	}
	kept := map[string]bool{}
	for _, p := range msg.Parts {
		if !att[p] && !p.IsMultipart && p.SHA256 != "" {
			kept[p.SHA256] = true
		}
	}
	return kept
}

// outputHashes decodes out every way there is: every leaf of every reading
// of it, and every block between empty or delimiter lines taken as it
// stands, as base64 and as quoted-printable.
func outputHashes(out []byte, lim mimeparse.Limits) map[string]bool {
	hs := map[string]bool{}
	add := func(b []byte) {
		s := sha256.Sum256(b)
		hs[hex.EncodeToString(s[:])] = true
	}
	if m, err := mimeparse.Parse(bytes.NewReader(out), lim); err == nil {
		for _, p := range m.Parts {
			if p.SHA256 != "" {
				hs[p.SHA256] = true
			}
		}
	}
	var block []string
	flush := func() {
		if len(block) == 0 {
			return
		}
		text := strings.Join(block, "\r\n")
		add([]byte(text))
		add([]byte(text + "\r\n"))
		var b64 strings.Builder
		for _, c := range text {
			if c < 128 && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
				b64.WriteRune(c)
			}
		}
		s := b64.String()
		s = s[:len(s)/4*4]
		if d, err := base64.StdEncoding.DecodeString(s); err == nil {
			add(d)
		}
		if d, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64.String(), "=")); err == nil {
			add(d)
		}
		if d, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(text + "\r\n"))); err == nil {
			add(d)
		}
		block = block[:0]
	}
	for _, line := range strings.Split(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "--") {
			flush()
			continue
		}
		block = append(block, line)
	}
	flush()
	return hs
}

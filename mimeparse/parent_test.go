package mimeparse

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestParentAndCarrier checks the tree as indices on a message with every
// kind of part: a multipart, a uuencoded file found in a body, a message
// enclosed with a transfer encoding (whose parts exist only decoded), and an
// enclosed message with bytes of its own.
func TestParentAndCarrier(t *testing.T) {
	inner := "From: x@example.org\r\n" +
		"Content-Type: multipart/alternative; boundary=i\r\n\r\n" +
		"--i\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--i\r\nContent-Type: text/plain; name=notes.txt\r\n\r\nnotes\r\n" +
		"--i--\r\n"
	raw := "From: a@example.org\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=invoice.txt\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n" +
		"begin 644 invoice.exe\r\nJ35J0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  \r\n`\r\nend\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(inner)) + "\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: plain\r\n\r\nbody\r\n" +
		"--b--\r\n"
	m, err := Parse(strings.NewReader(raw), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	// path: parent's path ("" for the root), carrier's path
	want := map[string][2]string{
		"0":    {"", "0"},
		"1":    {"0", "1"},
		"1.u1": {"1", "1"},
		"2":    {"0", "2"},
		"2.0":  {"2", "2"},
		"2.1":  {"2.0", "2"},
		"2.2":  {"2.0", "2"},
		"3":    {"0", "3"},
		"3.1":  {"3", "3.1"},
	}
	if len(m.Parts) != len(want) {
		t.Fatalf("%d parts, want %d", len(m.Parts), len(want))
	}
	for i, p := range m.Parts {
		w, ok := want[p.Path]
		if !ok {
			t.Fatalf("unexpected part %s", p.Path)
		}
		parent := ""
		if p.Parent >= 0 {
			parent = m.Parts[p.Parent].Path
		} else if p.Parent != -1 || i != 0 {
			t.Errorf("part %s: Parent %d", p.Path, p.Parent)
		}
		if parent != w[0] {
			t.Errorf("part %s: parent %q, want %q", p.Path, parent, w[0])
		}
		if c := m.Parts[m.Carrier(i)].Path; c != w[1] {
			t.Errorf("part %s: carrier %s, want %s", p.Path, c, w[1])
		}
	}
	var att []string
	for _, p := range m.Attachments() {
		att = append(att, p.Path)
	}
	// 2 and 3 are containers; 2.2 is named, 1 names a file.
	if got := strings.Join(att, " "); got != "1 1.u1 2.2" {
		t.Errorf("Attachments: %s", got)
	}
	for _, i := range []int{-1, len(m.Parts)} {
		if c := m.Carrier(i); c != -1 {
			t.Errorf("Carrier(%d) = %d, want -1", i, c)
		}
	}
}

package mimeparse

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMessageByContent: a message attached as application/octet-stream is
// parsed as an enclosed message (its executable is an attachment, the part
// gets message-by-content and stays an attachment itself); a text part
// holding a header-like text is not, unless it is named .eml.
func TestMessageByContent(t *testing.T) {
	raw, err := os.ReadFile("../testdata/carriers/attack-eml-as-octet.eml")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := Parse(bytes.NewReader(raw), DefaultLimits())
	var paths []string
	for _, p := range m.Attachments() {
		paths = append(paths, p.Path)
		if p.Path == "2" && (!p.IsAttachment || !slices.Contains(p.Defects, DefectMessageByContent)) {
			t.Errorf("part 2: attachment %v, defects %v", p.IsAttachment, p.Defects)
		}
		if p.Path == "2.2" && !p.Executable {
			t.Errorf("part 2.2 is not the executable: %+v", p)
		}
	}
	if strings.Join(paths, " ") != "2 2.2" {
		t.Errorf("attachments %v", paths)
	}
	inner := "From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\n\r\nhello\r\n"
	for _, c := range []struct {
		ctype, name string
		want        bool
	}{
		{"text/plain", "notes.txt", false},
		{"text/plain", "fwd.eml", true},
		{"application/octet-stream", "scan.dat", true},
		{"message/rfc822", "", false}, // a declared message is read as one anyway, without the defect
	} {
		msg := "From: s@example.com\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
			"Content-Type: " + c.ctype + "\r\nContent-Disposition: attachment; filename=\"" + c.name + "\"\r\n\r\n" + inner + "--b--\r\n"
		m, _ := Parse(strings.NewReader(msg), DefaultLimits())
		if got := slices.Contains(m.Defects, DefectMessageByContent); got != c.want {
			t.Errorf("%s %s: message-by-content %v, want %v", c.ctype, c.name, got, c.want)
		}
	}
}

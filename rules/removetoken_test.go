package rules

import (
	"bytes"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// TestRemoveToken: only the Authentication-Results fields that claim the
// id are removed, a comment before the id does not hide it, the others
// stay byte for byte.
func TestRemoveToken(t *testing.T) {
	raw := "Authentication-Results: mx.example.org; spf=pass\r\n" +
		"Authentication-Results: relay.example; dkim=pass\r\n" +
		"Authentication-Results: (forged) MX.example.org.;\r\n dmarc=pass\r\n" +
		"Authentication-Results: mx.example.org.evil; arc=pass\r\n" +
		"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
	msg, err := mimeparse.Parse(strings.NewReader(raw), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	ed := &Edits{Headers: []HeaderEdit{{Op: OpRemoveToken, Name: "Authentication-Results", Value: "mx.example.org"},
		{Op: "add", Name: "Authentication-Results", Value: "mx.example.org; spf=none"}}}
	var out bytes.Buffer
	if _, err := Rewrite(&out, strings.NewReader(raw), msg, ed); err != nil {
		t.Fatal(err)
	}
	want := "Authentication-Results: mx.example.org; spf=none\r\n" +
		"Authentication-Results: relay.example; dkim=pass\r\n" +
		"Authentication-Results: mx.example.org.evil; arc=pass\r\n" +
		"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	for in, want := range map[string]string{" a.example; x": "a.example", "(c (nested) \\) x) b.example": "b.example", "c.example.": "c.example", "": "", "(unclosed": ""} {
		if got := FirstToken(in); got != want {
			t.Errorf("FirstToken(%q) = %q, want %q", in, got, want)
		}
	}
}

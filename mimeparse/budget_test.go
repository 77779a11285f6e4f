package mimeparse

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"mailgate/internal/hostile"
)

// TestDecompressedBudgetPerMessage: limits.decompressed_bytes is one
// budget for the whole message, enclosed messages included: two bzip2
// bombs, one of them inside a base64 message/rfc822, both hit it.
func TestDecompressedBudgetPerMessage(t *testing.T) {
	bomb := base64.StdEncoding.EncodeToString(hostile.Bzip2Bomb())
	inner := "Content-Type: application/x-bzip2\r\nContent-Transfer-Encoding: base64\r\n\r\n" + bomb + "\r\n"
	msg := "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: application/x-bzip2\r\nContent-Transfer-Encoding: base64\r\n\r\n" + bomb + "\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(inner)) + "\r\n--b--\r\n"
	lim := DefaultLimits()
	lim.DecompressedBytes = 8 << 20
	lim.SpillDir = t.TempDir()
	m, err := Parse(strings.NewReader(msg), lim)
	if err != nil {
		t.Fatal(err)
	}
	hit := 0
	for _, p := range m.Parts {
		if slices.Contains(p.Defects, "limit-decompressed-bytes") {
			hit++
		}
	}
	if hit != 2 {
		for _, p := range m.Parts {
			t.Logf("%s %s %q", p.Path, p.ContentType, p.Defects)
		}
		t.Fatalf("%d parts hit the budget, want 2", hit)
	}
}

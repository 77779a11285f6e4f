package rules_test

import (
	"os"
	"strings"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// Rewrite splices a verdict's edits into the original bytes: the stripped
// attachment becomes a short notice, the subject gets its prefix, a header
// is added on top, and every other byte stays as it was.
func ExampleRewrite() {
	raw := "From: a@example.com\r\n" +
		"Subject: Invoice\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n" +
		"\r\n" +
		"--b\r\n" +
		"Content-Type: text/plain\r\n" +
		"\r\n" +
		"See attached.\r\n" +
		"--b\r\n" +
		"Content-Type: application/octet-stream; name=\"invoice.exe\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" +
		"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n" +
		"--b--\r\n"
	msg, _ := mimeparse.Parse(strings.NewReader(raw), mimeparse.DefaultLimits())
	ed := &rules.Edits{
		Headers:       []rules.HeaderEdit{{Op: "add", Name: "X-Scanned", Value: "yes", Rule: "scan"}},
		SubjectPrefix: "[EXT] ",
		Strip:         []rules.Strip{{Path: "2", Filename: "invoice.exe", Rule: "block-exe"}},
	}
	var out strings.Builder
	rules.Rewrite(&out, strings.NewReader(raw), msg, ed)
	os.Stdout.WriteString(strings.ReplaceAll(out.String(), "\r\n", "\n"))
	// Output:
	// X-Scanned: yes
	// From: a@example.com
	// Subject: [EXT] Invoice
	// Content-Type: multipart/mixed; boundary="b"
	//
	// --b
	// Content-Type: text/plain
	//
	// See attached.
	// --b
	// Content-Type: text/plain; charset=utf-8
	// Content-Transfer-Encoding: quoted-printable
	// Content-Disposition: inline
	//
	// The attachment "invoice.exe" was removed from this message.
	// Removed by mailgate, rule block-exe.
	//
	// --b--
}

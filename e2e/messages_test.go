package e2e_test

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// crlf joins lines with CRLF and ends with one.
func crlf(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n") }

// b64 wraps data as RFC 2045 base64 lines of 76 characters.
func b64(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var out []string
	for len(s) > 76 {
		out = append(out, s[:76])
		s = s[76:]
	}
	return strings.Join(append(out, s), "\r\n")
}

// tinyPE is the head of a PE32+ executable: DOS header, PE signature, COFF
// header and the optional header's magic, which is what sniffers read.
func tinyPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	binary.LittleEndian.PutUint32(b[0x3c:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	binary.LittleEndian.PutUint16(b[0x44:], 0x8664) // machine: amd64
	binary.LittleEndian.PutUint16(b[0x46:], 1)      // sections
	binary.LittleEndian.PutUint16(b[0x54:], 0xf0)   // optional header size
	binary.LittleEndian.PutUint16(b[0x56:], 0x22)   // executable image
	binary.LittleEndian.PutUint16(b[0x58:], 0x20b)  // PE32+
	copy(b[0x100:], "This program cannot be run in DOS mode.")
	return b
}

// macroDocm is an OOXML Word document with a VBA project (a .docm).
func macroDocm(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := []struct{ name, body string }{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/><Override PartName="/word/document.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/></Types>`},
		{"_rels/.rels", `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Quarterly report</w:t></w:r></w:p></w:body></w:document>`},
		{"word/vbaProject.bin", "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + strings.Repeat("\x00", 504)},
	}
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(f.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func cleanMessage(id string) []byte {
	return crlf(
		"From: Alice <alice@sender.test>",
		"To: Bob <bob@example.net>",
		"Subject: clean message "+id,
		"Date: Sun, 22 Nov 2026 10:00:00 +0000",
		"Message-ID: <"+id+"@sender.test>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"Hello Bob,",
		".a line that starts with a dot must survive dot-stuffing",
		"..and one with two dots",
		"",
		"Regards, Alice",
	)
}

func attachmentMessage(id, ctype, filename string, content []byte) []byte {
	return crlf(
		"From: Alice <alice@sender.test>",
		"To: Bob <bob@example.net>",
		"Subject: attachment "+id,
		"Date: Sun, 22 Nov 2026 10:00:00 +0000",
		"Message-ID: <"+id+"@sender.test>",
		"MIME-Version: 1.0",
		`Content-Type: multipart/mixed; boundary="b1"`,
		"",
		"--b1",
		"Content-Type: text/plain; charset=utf-8",
		"",
		"Please find the file attached.",
		"--b1",
		fmt.Sprintf(`Content-Type: %s; name="%s"`, ctype, filename),
		fmt.Sprintf(`Content-Disposition: attachment; filename="%s"`, filename),
		"Content-Transfer-Encoding: base64",
		"",
		b64(content),
		"--b1--",
	)
}

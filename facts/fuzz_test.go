package facts

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// FuzzHeaderPieces: the header and tag parsers never panic on hostile
// input, and the body canonicalization gives the same hash whatever the
// write boundaries (the session's reads cut the body anywhere).
func FuzzHeaderPieces(f *testing.F) {
	f.Add([]byte("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x; s=y; b=abc\r\nFrom: a@b\r\n\r\nbody  \r\n\r\n"), 3)
	f.Add([]byte("DKIM-Signature: v=1; b=;; =; h=from:to\r\n folded\r\n\r\n"), 1)
	f.Add([]byte("From: \"x@y\" <a@[1.2.3.4]>, b@c\r\n\r\n\t \r\n"), 7)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		end := bytes.Index(data, []byte("\r\n\r\n"))
		hdr, body := data, []byte(nil)
		if end >= 0 {
			hdr, body = data[:end+2], data[end+4:]
		}
		fields := splitHeader(hdr)
		for _, fl := range fields {
			relaxedHeader(fl.raw)
			tagList(fl.value())
			withoutB(fl.raw)
		}
		arcChain(fields)
		fromDomain(fields)
		for _, relaxed := range []bool{false, true} {
			whole := &bodyCanon{h: sha256.New(), relaxed: relaxed}
			whole.Write(body)
			pieces := &bodyCanon{h: sha256.New(), relaxed: relaxed}
			n := 1 + (cut&0xff)%16
			for b := body; len(b) > 0; {
				k := min(n, len(b))
				pieces.Write(b[:k])
				b = b[k:]
			}
			if !bytes.Equal(whole.Sum(), pieces.Sum()) {
				t.Fatalf("relaxed=%v: the body hash depends on the write boundaries", relaxed)
			}
		}
	})
}

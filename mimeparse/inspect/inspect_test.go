package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"reflect"
	"testing"
)

// inspectBytes feeds body in one Write.
func inspectBytes(t testing.TB, opts Options, body []byte) Result {
	t.Helper()
	i := New(opts)
	if n, err := i.Write(body); n != len(body) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	return i.Close()
}

// inspectChunks feeds body in chunks of size n.
func inspectChunks(opts Options, body []byte, n int) Result {
	i := New(opts)
	for len(body) > 0 {
		k := min(n, len(body))
		i.Write(body[:k])
		body = body[k:]
	}
	return i.Close()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hasDefect(r Result, d string) bool {
	for _, x := range r.Defects {
		if x == d {
			return true
		}
	}
	return false
}

func TestHashAndSniff(t *testing.T) {
	rnd := make([]byte, 100000)
	rand.New(rand.NewSource(1)).Read(rnd)
	pdf := append([]byte("%PDF-1.7\n"), rnd[:5000]...)
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00")
	cases := []struct {
		name, typ string
		body      []byte
		exe       bool
	}{
		{"empty", "text/plain", nil, false},
		{"text", "text/plain", []byte("hello world\r\n"), false},
		{"pdf", "application/pdf", pdf, false},
		{"png", "image/png", png, false},
		{"random", "application/octet-stream", rnd, false},
		{"pe", "application/vnd.microsoft.portable-executable", minimalPE(), true},
		{"elf", "application/x-executable", minimalELF(), true},
		{"macho64", "application/x-mach-binary", []byte{0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1, 3, 0, 0, 0, 2, 0, 0, 0}, true},
		{"macho-fat", "application/x-mach-binary", []byte{0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 2, 0, 0, 0, 7}, true},
		{"java-class", "application/x-java-applet", []byte{0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 52, 0, 10}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inspectBytes(t, Options{}, c.body)
			if r.Size != int64(len(c.body)) || r.SHA256 != sha(c.body) {
				t.Errorf("size/sha = %d %s, want %d %s", r.Size, r.SHA256, len(c.body), sha(c.body))
			}
			if r.DetectedType != c.typ {
				t.Errorf("DetectedType = %q, want %q", r.DetectedType, c.typ)
			}
			if r.Executable != c.exe {
				t.Errorf("Executable = %v, want %v", r.Executable, c.exe)
			}
			if len(r.Defects) != 0 {
				t.Errorf("defects %v", r.Defects)
			}
		})
	}
}

// minimalPE is a DOS header pointing at a PE signature and a COFF header.
func minimalPE() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00\x4c\x01")
	return b
}

func minimalELF() []byte {
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	b[16] = 2  // ET_EXEC
	b[18] = 62 // x86-64
	return b
}

// TestChunking: one Write and 1-byte (and odd-sized) Writes give the same Result.
func TestChunking(t *testing.T) {
	for name, body := range chunkBodies(t) {
		t.Run(name, func(t *testing.T) {
			opts := Options{Text: true}
			want := inspectBytes(t, opts, body)
			for _, n := range []int{1, 7, 4096} {
				if got := inspectChunks(opts, body, n); !reflect.DeepEqual(got, want) {
					t.Errorf("chunk %d:\n got %+v\nwant %+v", n, got, want)
				}
			}
		})
	}
}

func chunkBodies(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"text": bytes.Repeat([]byte("line of text\r\n"), 500),
		"pe":   minimalPE(),
	}
}

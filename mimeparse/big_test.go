package mimeparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"math/rand"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestBigMessageMemory (opt-in: MAILGATE_BIG=1) parses a generated 200 MB
// message with ten base64 attachments, streamed through an io.Pipe and
// never held, and asserts that the heap stays under 32 MiB. The peak is
// sampled from runtime.MemStats every 5 ms.
func TestBigMessageMemory(t *testing.T) {
	if os.Getenv("MAILGATE_BIG") != "1" {
		t.Skip("set MAILGATE_BIG=1 to parse a 200 MB message (about 10 s)")
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(genMessage(pw, "big")) }()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	start := time.Now()
	m, err := Parse(pr, DefaultLimits())
	elapsed := time.Since(start)
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	var end runtime.MemStats
	runtime.ReadMemStats(&end)
	if end.HeapInuse > peak.Load() {
		peak.Store(end.HeapInuse)
	}
	att := m.Attachments()
	if m.Size < 200<<20 || len(att) != 10 {
		t.Fatalf("size %d, %d attachments", m.Size, len(att))
	}
	for _, a := range att {
		if a.Size != 15<<20 {
			t.Fatalf("%s: %d bytes", a.Filename, a.Size)
		}
	}
	const limit = 32 << 20
	t.Logf("parsed %d MB in %v (%.0f MB/s); peak HeapInuse %.1f MiB (baseline %.1f MiB), TotalAlloc %.1f MiB",
		m.Size>>20, elapsed.Round(time.Millisecond), float64(m.Size)/1e6/elapsed.Seconds(),
		float64(peak.Load())/(1<<20), float64(base.HeapInuse)/(1<<20), float64(end.TotalAlloc-base.TotalAlloc)/(1<<20))
	if peak.Load() > limit {
		t.Errorf("peak heap %d bytes, over %d", peak.Load(), limit)
	}
}

// BenchmarkParse parses generated messages of several shapes; it reports
// MB/s of raw message and allocations (docs/DEVELOPING.md rule 24: it
// compares, it does not assert).
func BenchmarkParse(b *testing.B) {
	for _, shape := range []string{"text", "alternative", "attach1m", "attach20m", "nested"} {
		var buf bytes.Buffer
		if err := genMessage(&buf, shape); err != nil {
			b.Fatal(err)
		}
		raw := buf.Bytes()
		b.Run(shape, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			start := cpuNow()
			for b.Loop() {
				if _, err := Parse(bytes.NewReader(raw), DefaultLimits()); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start, len(raw))
		})
	}
}

// BenchmarkStdlib does the same work with the standard library, for
// comparison: net/mail, mime/multipart (recursively), transfer decoding and
// SHA-256 of every leaf.
func BenchmarkStdlib(b *testing.B) {
	for _, shape := range []string{"text", "alternative", "attach1m", "attach20m", "nested"} {
		var buf bytes.Buffer
		if err := genMessage(&buf, shape); err != nil {
			b.Fatal(err)
		}
		raw := buf.Bytes()
		b.Run(shape, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			start := cpuNow()
			for b.Loop() {
				msg, err := mail.ReadMessage(bytes.NewReader(raw))
				if err != nil {
					b.Fatal(err)
				}
				if n := stdlibWalk(textproto.MIMEHeader(msg.Header), msg.Body); n == 0 {
					b.Fatal("no leaves")
				}
			}
			reportCPU(b, start, len(raw))
		})
	}
}

// reportCPU adds CPU time per operation and the throughput it gives
// (cpu-MB/s): run with -cpu 1 they stay comparable when the machine is
// shared and wall time is mostly waiting for a core.
func reportCPU(b *testing.B, start time.Duration, size int) {
	if start == 0 || b.N == 0 {
		return
	}
	ns := float64(cpuNow()-start) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	b.ReportMetric(float64(size)*1e3/ns, "cpu-MB/s")
}

func stdlibWalk(h textproto.MIMEHeader, body io.Reader) int {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return n
			}
			n += stdlibWalk(p.Header, p)
		}
	}
	var r io.Reader = body
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	s := sha256.New()
	io.Copy(s, r)
	s.Sum(nil)
	return 1
}

// BenchmarkRawBase64SHA256 is the floor for an attachment: decode a flat
// base64 buffer (no line breaks) and hash it, in 32 KiB pieces.
func BenchmarkRawBase64SHA256(b *testing.B) {
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	enc := []byte(base64.StdEncoding.EncodeToString(data))
	out := make([]byte, 48<<10)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		h := sha256.New()
		for p := enc; len(p) > 0; {
			k := min(len(p), 64<<10)
			n, _ := base64.StdEncoding.Decode(out, p[:k])
			h.Write(out[:n])
			p = p[k:]
		}
		h.Sum(nil)
	}
}

// TestAllocBound: parsing a message with a 1 MB attachment allocates a
// small constant, not the body: bodies are streamed, never copied whole
// (a memory bound may be asserted, docs/DEVELOPING.md rule 24).
func TestAllocBound(t *testing.T) {
	var buf bytes.Buffer
	if err := genMessage(&buf, "attach1m"); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	Parse(bytes.NewReader(raw), DefaultLimits()) // warm the buffer pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 5
	for range runs {
		if _, err := Parse(bytes.NewReader(raw), DefaultLimits()); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d bytes allocated per parse of a %d-byte message", per, len(raw))
	if per > 256<<10 {
		t.Errorf("%d bytes allocated per parse, want under 256 KiB", per)
	}
}

// BenchmarkB64Writer: b64Writer on 1 MiB of base64 in 76-character CRLF
// lines (what mail clients send), written in 8 KiB pieces as the parser
// hands a body on.
func BenchmarkB64Writer(b *testing.B) {
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data)
	flat := base64.StdEncoding.EncodeToString(data)
	var enc []byte
	for len(flat) > 76 {
		enc = append(append(enc, flat[:76]...), "\r\n"...)
		flat = flat[76:]
	}
	enc = append(append(enc, flat...), "\r\n"...)
	pending, out := make([]byte, 0, decodeChunk), make([]byte, decodeChunk)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var d b64Writer
		d.reset(io.Discard, pending, out)
		for p := enc; len(p) > 0; {
			k := min(len(p), 8<<10)
			d.Write(p[:k])
			p = p[k:]
		}
		if def := d.close(); len(def) > 0 {
			b.Fatal(def)
		}
	}
}

package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkDotReader measures the DATA reader's throughput on a typical
// message body (base64 lines of 76 characters).
func BenchmarkDotReader(b *testing.B) {
	for _, size := range []int{64 << 10, 4 << 20} {
		line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 3)[:76] + "\r\n"
		wire := strings.Repeat(line, size/len(line)) + ".\r\n"
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			r := strings.NewReader(wire)
			br := bufio.NewReaderSize(r, 8192)
			for i := 0; i < b.N; i++ {
				r.Reset(wire)
				br.Reset(r)
				if _, err := io.Copy(io.Discard, newDotReader(br, false)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDotWriter measures the re-encoding to the upstream.
func BenchmarkDotWriter(b *testing.B) {
	msg := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), (4<<20)/78)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w := newDotWriter(io.Discard)
		w.Write(msg)
		w.Close()
	}
}

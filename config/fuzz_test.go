package config

import (
	"errors"
	"testing"
)

// FuzzParse: any file gives a Config or an *Error, never a panic, and a
// Config it accepts has every limit above zero (the fail-closed rules rely
// on them).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"upstream: smtp://127.0.0.1:25\n",
		"listen: [\"0.0.0.0:25\"]\nhostname: mx.example.org\nupstream: smtp://127.0.0.1:10025\nxclient: true\npolicies: []\n",
		"upstream: maildir:m\nlimits: {message_size: 1MiB, mime_depth: 3}\ntimeouts: {greet_delay: 0s, policy: 1s}\n",
		"upstream: smtp://h:1\nlists: {a: b.txt}\ntrusted_forwarders: [127.0.0.1/32, '::1']\n",
		"upstream: &a smtp://h:1\nhostname: *a\n",
		"limits: [1]\nxclient: maybe\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			return
		}
		l := c.Limits
		for _, v := range []int64{l.MessageSize, int64(l.Recipients), int64(l.Connections), l.LineLength, int64(l.MimeDepth),
			int64(l.MimeParts), l.HeaderBytes, int64(l.ArchiveDepth), int64(l.ArchiveEntries), l.SpoolMemory, l.SpoolTotal,
			l.InspectSpill, int64(l.Errors), l.DecompressedBytes, l.ArchiveDict} {
			if v <= 0 {
				t.Fatalf("accepted a limit of %d: %+v", v, l)
			}
		}
	})
}

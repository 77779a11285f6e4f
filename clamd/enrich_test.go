package clamd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// TestEnricher: the scan happens at stage data and only when a rule reads
// Virus; each outcome becomes the facts the rules contract names.
func TestEnricher(t *testing.T) {
	var scans atomic.Int32
	addr := fakeClamd(t, func(c net.Conn) {
		scans.Add(1)
		data, _ := readStream(c)
		if bytes.Contains(data, []byte("EICAR")) {
			c.Write([]byte("stream: Eicar-Test-Signature FOUND\x00"))
			return
		}
		c.Write([]byte("stream: OK\x00"))
	})
	cl, _ := New(addr, 2*time.Second, 100)
	open := func(s string) func() (io.Reader, int64, error) {
		return func() (io.Reader, int64, error) { return bytes.NewReader([]byte(s)), int64(len(s)), nil }
	}
	var outcomes []string
	observe := func(o string, _ time.Duration) { outcomes = append(outcomes, o) }

	f := &rules.Facts{Msg: &mimeparse.Message{}}
	(&Enricher{Client: cl, Wanted: false, Open: open("EICAR"), Observe: observe}).Enrich(rules.StageData, f)
	(&Enricher{Client: cl, Wanted: true, Open: open("EICAR"), Observe: observe}).Enrich(rules.StageRcpt, f)
	if scans.Load() != 0 || f.Virus.Found {
		t.Fatalf("scanned without a rule reading Virus, or before data: %d scans, %+v", scans.Load(), f.Virus)
	}
	(&Enricher{Client: cl, Wanted: true, Open: open("EICAR"), Observe: observe}).Enrich(rules.StageData, f)
	if !f.Virus.Found || !slices.Equal(f.Virus.Names, []string{"Eicar-Test-Signature"}) || f.Virus.Error != "" {
		t.Errorf("EICAR: %+v", f.Virus)
	}
	f = &rules.Facts{Msg: &mimeparse.Message{}}
	(&Enricher{Client: cl, Wanted: true, Open: open("clean"), Observe: observe}).Enrich(rules.StageData, f)
	if f.Virus.Found || f.Virus.Error != "" {
		t.Errorf("clean: %+v", f.Virus)
	}
	big := string(make([]byte, 101))
	(&Enricher{Client: cl, Wanted: true, Open: open(big), Observe: observe}).Enrich(rules.StageData, f)
	if f.Virus.Found || f.Virus.Error != "" || !slices.Equal(f.Msg.Defects, []string{mimeparse.DefectLimitVirusScanSize}) {
		t.Errorf("too big: %+v, defects %v", f.Virus, f.Msg.Defects)
	}
	f = &rules.Facts{Msg: &mimeparse.Message{}}
	failOpen := func() (io.Reader, int64, error) { return nil, 0, errors.New("spool gone") }
	(&Enricher{Client: cl, Wanted: true, Open: failOpen, Observe: observe}).Enrich(rules.StageData, f)
	if f.Virus.Error == "" || f.Virus.Found {
		t.Errorf("spool error: %+v", f.Virus)
	}
	down, _ := New("tcp://127.0.0.1:1", time.Second, 100)
	f = &rules.Facts{Msg: &mimeparse.Message{}}
	(&Enricher{Client: down, Wanted: true, Open: open("x"), Observe: observe}).Enrich(rules.StageData, f)
	if f.Virus.Error == "" {
		t.Errorf("clamd down: %+v", f.Virus)
	}
	want := []string{OutcomeSkipped, OutcomeFound, OutcomeClean, OutcomeTooBig, OutcomeError, OutcomeError}
	if !slices.Equal(outcomes, want) {
		t.Errorf("outcomes %v, want %v", outcomes, want)
	}
	if scans.Load() != 2 {
		t.Errorf("%d scans, want 2 (the too-big message is not sent)", scans.Load())
	}
}

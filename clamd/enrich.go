package clamd

import (
	"context"
	"errors"
	"io"
	"time"

	"mailgate/mimeparse"
	"mailgate/rules"
)

// Outcomes of one scan, as Enricher.Observe and the metrics name them.
const (
	OutcomeClean   = "clean"
	OutcomeFound   = "found"
	OutcomeError   = "error"
	OutcomeTooBig  = "too-big"
	OutcomeSkipped = "skipped" // no rule reads Virus: not scanned
)

// Enricher fills in rules.Facts.Virus at stage data (it is a
// rules.Enricher): it streams the message, as received, to clamd, and only
// when Wanted (the policy set reads Virus: rules.Set.Uses("Virus")), so a
// set that never looks at the verdict costs no scan.
//
// A failure becomes Virus.Error (the shipped antivirus pack tempfails on
// it); a message larger than Client.MaxSize is not sent and gets the
// defect limit-virus-scan-size, with Virus.Error empty: a retry cannot
// make it smaller, so it must not be deferred (docs/policy.md, "Virus
// scanning").
type Enricher struct {
	Client *Client
	Wanted bool
	Ctx    context.Context // the session's: a closed session stops the scan (nil: Background)
	// Open returns the message as received and its size (the spool).
	Open func() (io.Reader, int64, error)
	// Observe, when set, is told each outcome and the time it took.
	Observe func(outcome string, d time.Duration)
}

var _ rules.Enricher = (*Enricher)(nil)

// Enrich scans at stage data; other stages are left alone.
func (e *Enricher) Enrich(stage rules.Stage, f *rules.Facts) {
	if stage != rules.StageData {
		return
	}
	if !e.Wanted || e.Client == nil || e.Open == nil {
		if e.Observe != nil {
			e.Observe(OutcomeSkipped, 0)
		}
		return
	}
	ctx := e.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	var res Result
	r, size, err := e.Open()
	if err == nil {
		res, err = e.Client.Scan(ctx, r, size)
	}
	outcome := Apply(res, err, f)
	if e.Observe != nil {
		e.Observe(outcome, time.Since(start))
	}
}

// Apply turns one scan's result into the facts and returns its outcome:
// ErrTooBig adds the defect limit-virus-scan-size to the message, any
// other error is Virus.Error.
func Apply(res Result, err error, f *rules.Facts) string {
	switch {
	case errors.Is(err, ErrTooBig):
		f.Virus = rules.Virus{}
		if f.Msg != nil {
			addDefect(f.Msg, mimeparse.DefectLimitVirusScanSize)
		}
		return OutcomeTooBig
	case err != nil:
		f.Virus = rules.Virus{Error: printable(err.Error())}
		return OutcomeError
	case res.Found:
		f.Virus = rules.Virus{Found: true, Names: res.Names}
		return OutcomeFound
	}
	f.Virus = rules.Virus{}
	return OutcomeClean
}

func addDefect(m *mimeparse.Message, d string) {
	for _, x := range m.Defects {
		if x == d {
			return
		}
	}
	m.Defects = append(m.Defects, d)
}

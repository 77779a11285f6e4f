package quarantine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"mailgate/upstream"
)

// Send re-sends a held message to up with the envelope of its newest
// event (docs/DESIGN.md, "Quarantine"): its sender, and every recipient or
// only those of rcpts (each must be one of the event's). The upstream is
// told the original client, as the proxy told it. It returns the
// upstream's reply to the message and the recipients it accepted; a
// recipient refused while others are accepted is reported in the error
// after the message went to the others.
func Send(ctx context.Context, dir string, m *Message, up upstream.Upstream, rcpts []string) (upstream.Reply, []string, error) {
	ev := m.Last()
	if ev == nil {
		return upstream.Reply{}, nil, fmt.Errorf("quarantine: %s has no event record: no envelope to release it with", m.SHA256)
	}
	if len(rcpts) == 0 {
		rcpts = ev.Rcpts
	}
	for _, r := range rcpts {
		if !slices.Contains(ev.Rcpts, r) {
			return upstream.Reply{}, nil, fmt.Errorf("quarantine: %s is not a recipient of %s (recipients: %v)", r, m.SHA256, ev.Rcpts)
		}
	}
	if len(rcpts) == 0 {
		return upstream.Reply{}, nil, fmt.Errorf("quarantine: %s has no recipients", m.SHA256)
	}
	f, err := os.Open(Path(dir, m.SHA256))
	if err != nil {
		return upstream.Reply{}, nil, fmt.Errorf("quarantine: %w", err)
	}
	defer f.Close()
	ci := upstream.Client{Name: "[UNAVAILABLE]", Addr: ev.ClientIP, Proto: "ESMTP", Helo: ev.HELO}
	c, err := up.Open(ctx, ci)
	if err != nil {
		return upstream.Reply{}, nil, err
	}
	defer c.Close()
	defer c.Quit(ctx)
	rp, err := c.Mail(ctx, ev.From, nil, ci)
	if err != nil {
		return upstream.Reply{}, nil, err
	}
	if rp.Code/100 != 2 {
		return rp, nil, fmt.Errorf("quarantine: upstream refused the sender <%s>: %s", ev.From, rp.String())
	}
	var ok []string
	var refused []error
	for _, to := range rcpts {
		rp, err := c.Rcpt(ctx, to, nil)
		if err != nil {
			return upstream.Reply{}, nil, err
		}
		if rp.Code/100 != 2 {
			refused = append(refused, fmt.Errorf("upstream refused <%s>: %s", to, rp.String()))
			continue
		}
		ok = append(ok, to)
	}
	if len(ok) == 0 {
		return rp, nil, fmt.Errorf("quarantine: %w", errors.Join(refused...))
	}
	rp, err = c.Data(ctx, f)
	if err != nil {
		return upstream.Reply{}, nil, err
	}
	if rp.Code/100 != 2 {
		return rp, nil, fmt.Errorf("quarantine: upstream refused the message: %s", rp.String())
	}
	if len(refused) > 0 {
		return rp, ok, fmt.Errorf("quarantine: released to %v only: %w", ok, errors.Join(refused...))
	}
	return rp, ok, nil
}

// NewRelease is the record of a release that the upstream accepted.
func NewRelease(m *Message, rcpts []string, upstreamURL string, rp upstream.Reply, now time.Time) Release {
	from := ""
	if ev := m.Last(); ev != nil {
		from = ev.From
	}
	return Release{Time: now, SHA256: m.SHA256, From: from, Rcpts: rcpts, Upstream: upstreamURL, Reply: rp.String()}
}

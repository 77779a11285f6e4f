package facts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/mail"
	"strings"
	"sync"

	"github.com/emersion/go-msgauth/dkim"

	"mailgate/rules"
)

// Bounds of the message checks.
const (
	maxHeaderBytes    = 1 << 20 // header kept for ARC and the signatures' tags
	maxDKIMSignatures = 8       // more are not verified (each costs a key lookup and a hash)
	dkimQueueChunks   = 64      // writes queued for the DKIM verifier (the session's reads are at most 64 KiB)
)

// MessageChecker verifies DKIM signatures and the ARC chain while the
// message streams through Write (CRLF line ends, dot-unstuffed: the bytes
// as received), so the spool is never read a second time. Close ends the
// message and returns the results.
type MessageChecker struct {
	ctx    context.Context
	r      *Resolver
	dkimOn bool
	arcOn  bool
	// prefetchDMARC: start the From domain's DMARC lookup at the end of
	// the header (Lookups sets it when auth_checks.dmarc is on).
	prefetchDMARC bool
	hdr           bytes.Buffer
	hdrDone       bool
	hdrOver       bool
	fields        []headerField
	arcSets       []arcSet
	arcOK         bool
	arcHave       bool
	arcBody       *bodyCanon
	pw            *io.PipeWriter
	queue         chan []byte // chunks on their way to the DKIM verifier
	fed           chan struct{}
	dkimRes       chan []*dkim.Verification
	closeOne      sync.Once
	closed        bool
	result        MessageResult
}

// MessageResult is what the message checks found.
type MessageResult struct {
	DKIM       []rules.DKIMResult // Aligned is filled by DMARC (it needs the From domain)
	ARC        string             // pass, fail, none ("" when ARC is off)
	FromDomain string             // domain of the single From address, "" if none or several
	Errors     []string
}

// NewMessageChecker starts the checks that are on.
func NewMessageChecker(ctx context.Context, r *Resolver, dkimOn, arcOn bool) *MessageChecker {
	m := &MessageChecker{ctx: ctx, r: r, dkimOn: dkimOn, arcOn: arcOn}
	if dkimOn {
		pr, pw := io.Pipe()
		m.pw = pw
		m.dkimRes = make(chan []*dkim.Verification, 1)
		// The verifier looks its keys up before it hashes the body: the
		// queue lets the message stream on meanwhile, up to its bound
		// (then Write waits, within dns.timeout).
		m.queue, m.fed = make(chan []byte, dkimQueueChunks), make(chan struct{})
		go func() {
			for b := range m.queue {
				_, _ = pw.Write(b) // the reader drains to the end, errors included
			}
			pw.Close()
			close(m.fed)
		}()
		go func() {
			opts := &dkim.VerifyOptions{
				LookupTXT:        func(name string) ([]string, error) { return r.LookupTXT(ctx, name) },
				MaxVerifications: maxDKIMSignatures,
			}
			vs, _ := dkim.VerifyWithOptions(pr, opts)
			// The verifier may stop reading early (a key that does not
			// exist): drain, so that Write never blocks for good.
			_, _ = io.Copy(io.Discard, pr)
			m.dkimRes <- vs
		}()
	}
	return m
}

// Write feeds the next bytes of the message.
func (m *MessageChecker) Write(p []byte) (int, error) {
	if m.closed {
		return len(p), nil
	}
	if m.queue != nil && len(p) > 0 {
		m.queue <- append([]byte(nil), p...)
	}
	if !m.hdrDone {
		m.captureHeader(p)
		return len(p), nil
	}
	if m.arcBody != nil {
		_, _ = m.arcBody.Write(p)
	}
	return len(p), nil
}

// captureHeader keeps the header (bounded) and, at its end, starts the
// ARC body hash with the newest AMS's body canonicalization.
func (m *MessageChecker) captureHeader(p []byte) {
	start := max(0, m.hdr.Len()-3)
	if m.hdr.Len()+len(p) > maxHeaderBytes {
		m.hdrOver, m.hdrDone = true, true
		return
	}
	m.hdr.Write(p)
	b := m.hdr.Bytes()
	end := -1
	if bytes.HasPrefix(b, []byte("\r\n")) {
		end = 0
	} else if i := bytes.Index(b[start:], []byte("\r\n\r\n")); i >= 0 {
		end = start + i + 2
	}
	if end < 0 {
		return
	}
	m.hdrDone = true
	body := b[end+2:]
	m.fields = splitHeader(b[:end])
	m.hdr.Truncate(end)
	if m.prefetchDMARC {
		// The From domain is known at the end of the header: look its
		// DMARC record up while the body streams in, so that the check
		// after the message finds it cached.
		if from := fromDomain(m.fields); from != "" {
			go lookupDMARC(m.ctx, m.r, from)
		}
	}
	if !m.arcOn {
		return
	}
	m.arcSets, m.arcHave, m.arcOK = arcChain(m.fields)
	if m.arcHave && m.arcOK {
		_, br := canonModes(tagList(m.arcSets[len(m.arcSets)-1].ams.value())["c"])
		m.arcBody = &bodyCanon{h: sha256.New(), relaxed: br}
		_, _ = m.arcBody.Write(body)
	}
}

// Close ends the message and returns the results (once; later calls
// return the same).
func (m *MessageChecker) Close() MessageResult {
	m.closeOne.Do(m.finish)
	return m.result
}

func (m *MessageChecker) finish() {
	m.closed = true
	res := &m.result
	if !m.hdrDone {
		// A message without a body: the header is all there is.
		m.fields = splitHeader(bytes.TrimSuffix(m.hdr.Bytes(), []byte("\r\n")))
		m.hdrDone = true
		if m.arcOn {
			m.arcSets, m.arcHave, m.arcOK = arcChain(m.fields)
			if m.arcHave && m.arcOK {
				_, br := canonModes(tagList(m.arcSets[len(m.arcSets)-1].ams.value())["c"])
				m.arcBody = &bodyCanon{h: sha256.New(), relaxed: br}
			}
		}
	}
	res.FromDomain = fromDomain(m.fields)
	if m.queue != nil {
		close(m.queue)
		<-m.fed
		vs := <-m.dkimRes
		sigs := dkimSignatures(m.fields)
		for i, v := range vs {
			d := rules.DKIMResult{Domain: strings.ToLower(v.Domain), Result: dkimResult(v.Err)}
			if i < len(sigs) {
				d.Selector = sigs[i]["s"]
				if d.Domain == "" {
					d.Domain = strings.ToLower(sigs[i]["d"])
				}
			}
			if v.Err != nil {
				res.Errors = append(res.Errors, v.Err.Error())
			}
			res.DKIM = append(res.DKIM, d)
		}
	}
	if m.arcOn {
		switch {
		case m.hdrOver:
			res.ARC = rules.ResultFail
			res.Errors = append(res.Errors, "arc: header too large to check")
		case !m.arcHave:
			res.ARC = rules.ResultNone
		case !m.arcOK:
			res.ARC = rules.ResultFail
			res.Errors = append(res.Errors, "arc: broken chain (missing, duplicated or misnumbered sets)")
		default:
			var bh []byte
			if m.arcBody != nil {
				bh = m.arcBody.Sum()
			}
			r, err := verifyARC(m.ctx, m.r, m.fields, m.arcSets, bh)
			res.ARC = r
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
			}
		}
	}
}

// dkimResult maps go-msgauth's error classes to RFC 8601 results.
func dkimResult(err error) string {
	switch {
	case err == nil:
		return rules.ResultPass
	case dkim.IsTempFail(err):
		return rules.ResultTemperror
	case dkim.IsPermFail(err):
		return rules.ResultPermerror
	}
	return rules.ResultFail
}

// dkimSignatures are the tags of the DKIM-Signature fields, in header
// order (the order go-msgauth verifies them in).
func dkimSignatures(fields []headerField) []map[string]string {
	var out []map[string]string
	for _, f := range fields {
		if strings.EqualFold(f.name, "DKIM-Signature") {
			out = append(out, tagList(f.value()))
		}
	}
	return out
}

// fromDomain is the domain of the one From address ("" when there is no
// From field, several, or several addresses: DMARC then has no domain).
func fromDomain(fields []headerField) string {
	var from []headerField
	for _, f := range fields {
		if strings.EqualFold(f.name, "From") {
			from = append(from, f)
		}
	}
	if len(from) != 1 {
		return ""
	}
	v := strings.ReplaceAll(from[0].value(), "\r\n", "")
	addrs, err := mail.ParseAddressList(strings.TrimSpace(v))
	if err != nil || len(addrs) != 1 {
		// A From that net/mail cannot parse: take what follows the last '@'.
		return addrDomain(v)
	}
	return addrDomain(addrs[0].Address)
}

// addrDomain returns the lower-cased domain of an address ("" without '@').
func addrDomain(addr string) string {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimRight(addr[i+1:], "> \t"), "."))
}

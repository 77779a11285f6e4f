package facts

import (
	"context"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"mailgate/rules"
)

// DMARCResult is the DMARC evaluation (RFC 7489 §6.6).
type DMARCResult struct {
	Result string // pass, fail, none, temperror, permerror
	Policy string // none, quarantine, reject; "" without a record
	Err    string
}

// OrgDomain is the organizational domain of a name: its registrable
// domain by the public suffix list (RFC 7489 §3.2), the name itself when
// it is a public suffix or has no known suffix.
func OrgDomain(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return name
	}
	return org
}

// aligned reports whether a and b are aligned: the same organizational
// domain (relaxed) or the same name (strict).
func aligned(a, b string, strict bool) bool {
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	if a == "" || b == "" {
		return false
	}
	if strict {
		return a == b
	}
	return a == b || OrgDomain(a) == OrgDomain(b)
}

// AlignDKIM sets Aligned on each signature: relaxed alignment of its d=
// with the From domain (what Auth.DKIM reports, whatever adkim says).
func AlignDKIM(sigs []rules.DKIMResult, from string) {
	for i := range sigs {
		sigs[i].Aligned = aligned(sigs[i].Domain, from, false)
	}
}

// CheckDMARC looks up the From domain's policy (then its organizational
// domain's) and evaluates it over the SPF result (for spfDomain) and the
// DKIM signatures.
func CheckDMARC(ctx context.Context, r *Resolver, from, spfResult, spfDomain string, sigs []rules.DKIMResult) DMARCResult {
	if from == "" {
		return DMARCResult{Result: rules.ResultNone}
	}
	rec, sub, err := lookupDMARC(ctx, r, from)
	switch {
	case err == dmarc.ErrNoPolicy:
		return DMARCResult{Result: rules.ResultNone}
	case err != nil && dmarc.IsTempFail(err):
		return DMARCResult{Result: rules.ResultTemperror, Err: err.Error()}
	case err != nil:
		return DMARCResult{Result: rules.ResultPermerror, Err: err.Error()}
	}
	pol := rec.Policy
	if sub && rec.SubdomainPolicy != "" {
		pol = rec.SubdomainPolicy
	}
	res := DMARCResult{Result: rules.ResultFail, Policy: string(pol)}
	if spfResult == rules.ResultPass && aligned(spfDomain, from, rec.SPFAlignment == dmarc.AlignmentStrict) {
		res.Result = rules.ResultPass
	}
	for _, s := range sigs {
		if s.Result == rules.ResultPass && aligned(s.Domain, from, rec.DKIMAlignment == dmarc.AlignmentStrict) {
			res.Result = rules.ResultPass
		}
	}
	return res
}

// lookupDMARC finds the record at _dmarc.FROM, else at the organizational
// domain (sub: the record is the organizational domain's).
func lookupDMARC(ctx context.Context, r *Resolver, from string) (*dmarc.Record, bool, error) {
	opts := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(from, opts)
	if err != dmarc.ErrNoPolicy {
		return rec, false, err
	}
	org := OrgDomain(from)
	if org == strings.ToLower(from) {
		return nil, false, err
	}
	rec, err = dmarc.LookupWithOptions(org, opts)
	return rec, true, err
}

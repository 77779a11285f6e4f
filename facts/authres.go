package facts

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"mailgate/rules"
)

// AuthInputs are the identities the results were computed for.
type AuthInputs struct {
	MailFrom   string // the MAIL FROM address ("" for the null sender)
	HELO       string
	FromDomain string // of the From header field
	SPF, DKIM  bool   // which checks are on (a check that is off is not reported)
	DMARC, ARC bool
}

// AuthenticationResults is the value of the one Authentication-Results
// field (RFC 8601) mailgate adds: "authserv-id; spf=...; dkim=...; ...".
func AuthenticationResults(authservID string, a rules.Auth, in AuthInputs) string {
	var res []authres.Result
	if in.SPF {
		r := &authres.SPFResult{Value: authres.ResultValue(a.SPF)}
		if in.MailFrom != "" {
			r.From = in.MailFrom
		} else {
			r.Helo = in.HELO
		}
		res = append(res, r)
	}
	if in.DKIM {
		if len(a.DKIM) == 0 {
			res = append(res, &authres.DKIMResult{Value: authres.ResultNone})
		}
		for _, d := range a.DKIM {
			res = append(res, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result),
				Params: map[string]string{"header.d": d.Domain, "header.s": d.Selector}})
		}
	}
	if in.DMARC {
		res = append(res, &authres.DMARCResult{Value: authres.ResultValue(a.DMARC), From: in.FromDomain})
	}
	if in.ARC {
		// authres.Format does not name ARCResult's method (v0.7.0): generic.
		res = append(res, &authres.GenericResult{Method: "arc", Value: authres.ResultValue(a.ARC)})
	}
	// authres.Format leaves a space after a result without properties.
	return strings.ReplaceAll(strings.TrimSpace(authres.Format(authservID, res)), " ;", ";")
}

// ClaimsAuthservID reports whether an incoming Authentication-Results
// value claims to come from authservID: such a field is a forgery (or
// stale) and is removed before mailgate adds its own (RFC 8601 §5). The
// id is read as the splicer's OpRemoveToken reads it (rules.FirstToken),
// so what this reports is what is removed.
func ClaimsAuthservID(value, authservID string) bool {
	return strings.EqualFold(rules.FirstToken(value), strings.TrimSuffix(authservID, "."))
}

// AuthResultsEdits are the header edits that put mailgate's
// Authentication-Results field on a relayed message: remove every
// incoming one claiming authservID, add ours. They go through the same
// splicer as the rules' edits; they do not make the message "modified"
// for DKIM re-signing.
func AuthResultsEdits(authservID, value string) []rules.HeaderEdit {
	return []rules.HeaderEdit{
		{Op: rules.OpRemoveToken, Name: "Authentication-Results", Value: strings.TrimSuffix(authservID, ".")},
		{Op: "add", Name: "Authentication-Results", Value: value},
	}
}

package rules

import (
	"fmt"
	"regexp"
	"strings"
)

// DidYouMean returns " (did you mean X?)" for the candidate closest to word
// by edit distance (case-insensitive), or "" when none is close enough.
func DidYouMean(word string, candidates []string) string {
	best, bestD := "", 1<<30
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if c == word {
			continue
		}
		lc := strings.ToLower(c)
		d := editDistance(lw, lc)
		if len(lc) >= 3 && len(lw) >= 3 && (strings.HasPrefix(lw, lc) || strings.HasPrefix(lc, lw)) {
			d = min(d, 1) // Extension → Ext, Attach → Attachments
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	// Allow about one edit per three letters, at least 2; a case-only
	// difference (distance 0 after lower-casing) always qualifies.
	limit := len(word) / 3
	if limit < 2 {
		limit = 2
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b (bytes).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var (
	unknownNameRE = regexp.MustCompile(`^unknown name (\w+)`)
	noFieldRE     = regexp.MustCompile(`^type \*?([\w.]+) has no (?:field|method) (\w+)`)
)

// exprHint adds a suggestion to an expr compile error message.
func exprHint(msg string) string {
	// expr names a type as reflect does; mimeparse.ArchiveEntry is an alias
	// of inspect.Entry, and the policy documentation knows only the former.
	msg = strings.ReplaceAll(msg, "inspect.Entry", "mimeparse.ArchiveEntry")
	if m := unknownNameRE.FindStringSubmatch(msg); m != nil {
		return msg + DidYouMean(m[1], envNames())
	}
	if m := noFieldRE.FindStringSubmatch(msg); m != nil {
		return msg + DidYouMean(m[2], fieldNames(m[1]))
	}
	if strings.HasPrefix(msg, "invalid operation: in (mismatched types string and string)") {
		return msg + " (to find text in a string, write Subject contains \"text\"; in tests membership of a list or map)"
	}
	return msg
}

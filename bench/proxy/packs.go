package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Raised is the threshold every rate() comparison gets in the bench copy.
const Raised = "1000000000"

var (
	ruleStart = regexp.MustCompile(`^(\s*)-\s+name:`)
	greyLine  = regexp.MustCompile(`^\s*(?:-\s+)?(?:action:\s*["']?greylist\b|greylist:)`)
	modeLine  = regexp.MustCompile(`^(\s*)mode:\s*\S+`)
	topKey    = regexp.MustCompile(`^[A-Za-z_][\w-]*:`)
)

// PatchSpamBasics returns spam-basics.yaml made fit for single-address load:
// every rate(...) comparison's threshold raised to Raised, every rule that
// greylists put in monitor mode (still evaluated, never defers), and the
// tests: section dropped (its relative paths point next to the original).
// It fails when it finds no rate comparison or no greylist rule: the pack
// changed and the harness must be looked at, not silently measure
// deferrals.
func PatchSpamBasics(src string) (string, error) {
	src, err := raiseRates(src)
	if err != nil {
		return "", err
	}

	lines := strings.Split(src, "\n")
	var out []string
	grey := 0
	for i := 0; i < len(lines); {
		if lines[i] == "tests:" || strings.HasPrefix(lines[i], "tests:") && topKey.MatchString(lines[i]) {
			i++
			for i < len(lines) && !topKey.MatchString(lines[i]) {
				i++
			}
			continue
		}
		m := ruleStart.FindStringSubmatch(lines[i])
		if m == nil {
			out = append(out, lines[i])
			i++
			continue
		}
		// The rule block: this line to the next rule or top-level key.
		j := i + 1
		for j < len(lines) && !ruleStart.MatchString(lines[j]) && !topKey.MatchString(lines[j]) {
			j++
		}
		block := append([]string(nil), lines[i:j]...)
		isGrey := false
		for _, l := range block {
			if greyLine.MatchString(l) {
				isGrey = true
			}
		}
		if isGrey {
			grey++
			replaced := false
			for k, l := range block {
				if mm := modeLine.FindStringSubmatch(l); mm != nil {
					block[k] = mm[1] + "mode: monitor"
					replaced = true
				}
			}
			if !replaced {
				indent := m[1] + "  "
				block = append([]string{block[0], indent + "mode: monitor"}, block[1:]...)
			}
		}
		out = append(out, block...)
		i = j
	}
	if grey == 0 {
		return "", fmt.Errorf("bench: no greylisting rule (action: greylist or greylist:) found; update PatchSpamBasics")
	}
	return strings.Join(out, "\n"), nil
}

var (
	cmpAfter  = regexp.MustCompile(`^\s*(?:>=|>|==)\s*(\d+(?:\.\d+)?)`)
	cmpBefore = regexp.MustCompile(`(\d+(?:\.\d+)?)\s*(?:<=|<|==)\s*$`)
)

// raiseRates replaces the number every rate(...) call is compared with
// ("rate(k, w) > N" or "N < rate(k, w)") by Raised. The call's arguments may
// nest parentheses. Every rate( must be such a comparison, else it fails.
func raiseRates(src string) (string, error) {
	var b strings.Builder
	n := 0
	for {
		i := strings.Index(src, "rate(")
		if i < 0 {
			b.WriteString(src)
			break
		}
		if i > 0 && (isIdent(src[i-1])) { // e.g. "generate(": not ours
			b.WriteString(src[:i+5])
			src = src[i+5:]
			continue
		}
		// The matching parenthesis.
		depth, j := 0, i+4
		for ; j < len(src); j++ {
			if src[j] == '(' {
				depth++
			} else if src[j] == ')' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if j == len(src) {
			return "", fmt.Errorf("bench: unbalanced rate( call")
		}
		before, call, after := src[:i], src[i:j+1], src[j+1:]
		if m := cmpAfter.FindStringSubmatchIndex(after); m != nil {
			after = after[:m[2]] + Raised + after[m[3]:]
		} else if m := cmpBefore.FindStringSubmatchIndex(before); m != nil {
			before = before[:m[2]] + Raised + before[m[3]:]
		} else {
			line := strings.Count(b.String()+before, "\n") + 1
			return "", fmt.Errorf("bench: line %d: %s is not compared with a number; update PatchSpamBasics", line, call)
		}
		b.WriteString(before)
		b.WriteString(call)
		src = after
		n++
	}
	if n == 0 {
		return "", fmt.Errorf("bench: no rate(...) comparison with a number found to raise; update PatchSpamBasics")
	}
	return b.String(), nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}

var listRef = regexp.MustCompile(`Lists\.([A-Za-z_]\w*)|Lists\[["']([^"']+)["']\]`)

// listsFor maps every list the policies reference to a file: the shipped
// example policies/lists/NAME.txt when there is one, else a one-line file
// written under dir.
func listsFor(e *env, dir string, policies []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range policies {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		for _, m := range listRef.FindAllStringSubmatch(string(b), -1) {
			name := m[1] + m[2]
			if _, ok := out[name]; ok {
				continue
			}
			shipped := filepath.Join(e.root, "policies", "lists", name+".txt")
			if _, err := os.Stat(shipped); err == nil {
				out[name] = shipped
				continue
			}
			f := filepath.Join(dir, name+".txt")
			if err := os.WriteFile(f, []byte("example.net\n"), 0o644); err != nil {
				return nil, err
			}
			out[name] = f
		}
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

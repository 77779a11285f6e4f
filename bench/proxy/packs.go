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
	rateRight = regexp.MustCompile(`(rate\([^()]*\)\s*(?:>=|>|==)\s*)(\d+(?:\.\d+)?)`)
	rateLeft  = regexp.MustCompile(`(\d+(?:\.\d+)?)(\s*(?:<=|<|==)\s*rate\()`)
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
	n := len(rateRight.FindAllStringIndex(src, -1)) + len(rateLeft.FindAllStringIndex(src, -1))
	if n == 0 {
		return "", fmt.Errorf("bench: no rate(...) comparison with a number found to raise; update PatchSpamBasics")
	}
	src = rateRight.ReplaceAllString(src, "${1}"+Raised)
	src = rateLeft.ReplaceAllString(src, Raised+"${2}")

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

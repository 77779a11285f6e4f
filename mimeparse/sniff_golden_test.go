package mimeparse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The sniffed type and the Executable flag of every leaf (and of every
// archive entry and embedded file) are what policies block on. Speed work on
// the inspectors must not change a single one of them: these golden files
// record them for every fixture (sniff-fixtures.golden) and for every
// message of the conformance corpus (sniff-corpus.golden, checked when the
// corpus is present). go test -run TestSniffGolden -update rewrites them;
// a diff there is a change of security behaviour and needs a reason.

const (
	sniffFixturesGolden = "testdata/sniff-fixtures.golden"
	sniffCorpusGolden   = "testdata/sniff-corpus.golden"
)

// sniffLines appends one line per part, archive entry and embedded file:
// name, path, detected type, executable.
func sniffLines(out []string, name string, raw []byte) []string {
	lim := DefaultLimits()
	lim.MimeParts, lim.MimeDepth = 1<<20, 1<<10
	m, err := Parse(bytes.NewReader(raw), lim)
	if err != nil {
		return append(out, fmt.Sprintf("%s\terror %v", name, err))
	}
	for _, p := range m.Parts {
		if p.IsMultipart || p.Reading != "" {
			continue // the readings are TestReadings's
		}
		out = append(out, fmt.Sprintf("%s\t%s\t%s\t%t", name, p.Path, p.DetectedType, p.Executable))
		for _, e := range p.Archive {
			out = append(out, fmt.Sprintf("%s\t%s!%d:%q\t%s\t%t", name, p.Path, e.Depth, e.Name, e.DetectedType, e.Executable))
		}
	}
	return out
}

// sniffFixtureFiles lists every .eml of the shared and local fixture sets.
func sniffFixtureFiles(t *testing.T) []string {
	var files []string
	for _, d := range []string{"../testdata/mime", "../testdata/attacks", "../testdata/benign", "testdata"} {
		m, err := filepath.Glob(filepath.Join(d, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) < 50 {
		t.Fatalf("only %d fixtures", len(files))
	}
	return files
}

// corpusMessages returns every message the conformance test reads, named
// as it names them (mbox files split), plus the universal-newline copy of
// each file with a CR in it.
func corpusMessages(t *testing.T) (names []string, raws [][]byte) {
	var files []string
	filepath.WalkDir(filepath.Join(corpusDir, "expected"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") && filepath.Base(path) != "_meta.json" {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	for _, jf := range files {
		rel, _ := filepath.Rel(filepath.Join(corpusDir, "expected"), jf)
		rel = strings.TrimSuffix(rel, ".json")
		data, err := os.ReadFile(jf)
		if err != nil {
			t.Fatal(err)
		}
		var want pyMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", jf, err)
		}
		raw, err := os.ReadFile(filepath.Join(corpusDir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if want.Messages != nil {
			for i, m := range splitMbox(raw) {
				names, raws = append(names, fmt.Sprintf("%s[%d]", rel, i)), append(raws, m)
			}
			continue
		}
		names, raws = append(names, rel), append(raws, raw)
		if bytes.IndexByte(raw, '\r') >= 0 {
			names, raws = append(names, rel+"(LF)"), append(raws, universalNewlines(raw))
		}
	}
	return names, raws
}

func checkSniffGolden(t *testing.T, file string, lines []string) {
	got := []byte(strings.Join(lines, "\n") + "\n")
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestSniffGolden -update)", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	wl := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	n := 0
	for i := 0; i < max(len(wl), len(lines)) && n < 20; i++ {
		var g, w string
		if i < len(lines) {
			g = lines[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Errorf("%s line %d:\n got  %s\n want %s", file, i+1, g, w)
			n++
		}
	}
}

func TestSniffGolden(t *testing.T) {
	t.Run("fixtures", func(t *testing.T) {
		var lines []string
		for _, f := range sniffFixtureFiles(t) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines = sniffLines(lines, filepath.ToSlash(f), raw)
		}
		checkSniffGolden(t, sniffFixturesGolden, lines)
	})
	t.Run("corpus", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(corpusDir, "expected")); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("corpus missing at %s (needed in CI): %v", corpusDir, err)
			}
			t.Skipf("corpus not found at %s: skipping the corpus sniff golden", corpusDir)
		}
		names, raws := corpusMessages(t)
		if len(names) < 500 {
			t.Fatalf("only %d corpus messages", len(names))
		}
		var lines []string
		for i := range names {
			lines = sniffLines(lines, names[i], raws[i])
		}
		checkSniffGolden(t, sniffCorpusGolden, lines)
	})
}

// Command benchtable summarises `go test -bench BenchmarkParse` output
// (several -count runs, from one or more files) as a Markdown table: per
// shape and parser the median MB/s, allocations and bytes per parse, and the
// ratios mimeparse/fastest-peer and mimeparse/raw.
//
//	go run ./cmd/benchtable parser-out.txt [more.txt]
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Result is the medians of one benchmark.
type Result struct {
	MBs, Allocs, Bytes float64
	N                  int
}

type key struct{ shape, parser string }

var line = regexp.MustCompile(`^BenchmarkParse/([^/\s]+)/([^\s]+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(.*)$`)

// Parse reads benchmark lines and returns the medians per shape and parser,
// plus the shapes and parsers in order of first appearance.
func Parse(r io.Reader) (map[key]Result, []string, []string, error) {
	samples := map[key][3][]float64{}
	var shapes, parsers []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		k := key{m[1], m[2]}
		if !slices.Contains(shapes, k.shape) {
			shapes = append(shapes, k.shape)
		}
		if !slices.Contains(parsers, k.parser) {
			parsers = append(parsers, k.parser)
		}
		s := samples[k]
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "MB/s":
				s[0] = append(s[0], v)
			case "allocs/op":
				s[1] = append(s[1], v)
			case "B/op":
				s[2] = append(s[2], v)
			}
		}
		samples[k] = s
	}
	out := map[key]Result{}
	for k, s := range samples {
		out[k] = Result{median(s[0]), median(s[1]), median(s[2]), len(s[0])}
	}
	return out, shapes, parsers, sc.Err()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Write prints the Markdown table.
func Write(w io.Writer, res map[key]Result, shapes, parsers []string) {
	fmt.Fprintln(w, "| shape | parser | MB/s (median) | allocs/op | B/op | runs | mimeparse ÷ this |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, s := range shapes {
		mp, hasMP := res[key{s, "mimeparse"}]
		for _, p := range parsers {
			r, ok := res[key{s, p}]
			if !ok {
				continue
			}
			ratio := "—"
			if hasMP && p != "mimeparse" && r.MBs > 0 {
				ratio = fmt.Sprintf("%.2fx", mp.MBs/r.MBs)
			}
			fmt.Fprintf(w, "| %s | %s | %.1f | %.0f | %.0f | %d | %s |\n", s, p, r.MBs, r.Allocs, r.Bytes, r.N, ratio)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| shape | fastest peer | mimeparse ÷ fastest peer (target ≥ 1.5x) | mimeparse ÷ raw (target ≥ 0.5x) |")
	fmt.Fprintln(w, "|---|---|---:|---:|")
	for _, s := range shapes {
		best, bestName := 0.0, "—"
		for _, p := range parsers {
			if p == "mimeparse" || p == "raw" {
				continue
			}
			if r, ok := res[key{s, p}]; ok && r.MBs > best {
				best, bestName = r.MBs, p
			}
		}
		mp, ok := res[key{s, "mimeparse"}]
		vsPeer, vsRaw := "not measured", "not measured"
		if ok && best > 0 {
			vsPeer = fmt.Sprintf("%.2fx", mp.MBs/best)
		}
		if raw, rok := res[key{s, "raw"}]; ok && rok && raw.MBs > 0 {
			vsRaw = fmt.Sprintf("%.2fx", mp.MBs/raw.MBs)
		}
		fmt.Fprintf(w, "| %s | %s (%.1f MB/s) | %s | %s |\n", s, bestName, best, vsPeer, vsRaw)
	}
}

func main() {
	var readers []io.Reader
	for _, name := range os.Args[1:] {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	if len(readers) == 0 {
		readers = append(readers, os.Stdin)
	}
	res, shapes, parsers, err := Parse(io.MultiReader(readers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(res) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no BenchmarkParse lines in the input")
		os.Exit(1)
	}
	Write(os.Stdout, res, shapes, parsers)
}

package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

type cellKey struct {
	target, size string
	sessions     int
}

type cellStat struct {
	msgs, mb, p50, p99, cpu float64
	n, errs                 int
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

// summarize takes the median of each cell's successful runs.
func summarize(samples []sample) map[cellKey]cellStat {
	type acc struct{ msgs, mb, p50, p99, cpu []float64 }
	accs := map[cellKey]*acc{}
	errs := map[cellKey]int{}
	for _, s := range samples {
		k := cellKey{s.Target, s.Size, s.Sessions}
		if s.Err != "" {
			errs[k]++
			continue
		}
		a := accs[k]
		if a == nil {
			a = &acc{}
			accs[k] = a
		}
		a.msgs = append(a.msgs, s.MsgsPerS)
		a.mb = append(a.mb, s.MBPerS)
		a.p50 = append(a.p50, s.P50ms)
		a.p99 = append(a.p99, s.P99ms)
		if s.CPUms > 0 {
			a.cpu = append(a.cpu, s.CPUms)
		}
	}
	out := map[cellKey]cellStat{}
	for k, n := range errs {
		out[k] = cellStat{errs: n}
	}
	for k, a := range accs {
		out[k] = cellStat{median(a.msgs), median(a.mb), median(a.p50), median(a.p99), median(a.cpu), len(a.msgs), errs[k]}
	}
	return out
}

func report(w io.Writer, samples []sample, o options, bytesOf map[string]int, peak map[string]int64, notes []string) {
	st := summarize(samples)
	var targets []string
	for _, s := range samples {
		if !slices.Contains(targets, s.Target) {
			targets = append(targets, s.Target)
		}
	}
	fmt.Fprintf(w, "Medians of %d run(s) per cell. msg/s and MB/s: smtp-source (one connection per message) through the target to smtp-sink. "+
		"p50/p99: the harness's Go client, a whole transaction per connection (connect → 250 after the dot) at the same concurrency; "+
		"+p50/+p99: minus direct's at the same size and sessions. "+
		"CPU ms/msg: the target's own processes (mailgate, every instance, and its redis-server or clamd) during the msg/s load.\n\n", o.runs)
	fmt.Fprintln(w, "| size | sessions | target | msg/s | MB/s | ÷ byte-pump | p50 ms | p99 ms | +p50 ms | +p99 ms | CPU ms/msg | runs ok / failed |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, size := range o.sizes {
		for _, sess := range o.sessions {
			direct, hasDirect := st[cellKey{"direct", size, sess}]
			pump, hasPump := st[cellKey{"byte-pump", size, sess}]
			for _, t := range targets {
				c, ok := st[cellKey{t, size, sess}]
				if !ok {
					continue
				}
				ratio, addP50, addP99 := "—", "—", "—"
				if hasPump && pump.msgs > 0 && c.n > 0 {
					ratio = fmt.Sprintf("%.0f%%", 100*c.msgs/pump.msgs)
				}
				if hasDirect && direct.n > 0 && c.n > 0 && t != "direct" {
					addP50 = fmt.Sprintf("%+.2f", c.p50-direct.p50)
					addP99 = fmt.Sprintf("%+.2f", c.p99-direct.p99)
				}
				cpu := "—"
				if c.cpu > 0 {
					cpu = fmt.Sprintf("%.3f", c.cpu)
				}
				fmt.Fprintf(w, "| %s (%d B) | %d | %s | %.0f | %.1f | %s | %.2f | %.2f | %s | %s | %s | %d / %d |\n",
					size, bytesOf[size], sess, t, c.msgs, c.mb, ratio, c.p50, c.p99, addP50, addP99, cpu, c.n, c.errs)
			}
		}
	}
	if len(peak) > 0 {
		fmt.Fprintln(w, "\n| target | peak RSS (VmHWM) over the whole run |\n|---|---:|")
		for _, t := range targets {
			if kb, ok := peak[t]; ok {
				fmt.Fprintf(w, "| %s | %.1f MiB |\n", t, float64(kb)/1024)
			}
		}
	}
	checks := targetChecks(st)
	if len(checks) > 0 {
		fmt.Fprintln(w, "\nIssue 6 targets:")
		for _, c := range checks {
			fmt.Fprintln(w, "- "+c)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range notes {
			fmt.Fprintln(w, "- "+strings.ReplaceAll(n, "\n", " "))
		}
	}
	var errs []string
	for _, s := range samples {
		if s.Err != "" {
			errs = append(errs, fmt.Sprintf("run %d %s %s s=%d: %s", s.Run, s.Target, s.Size, s.Sessions, firstLines(s.Err, 4)))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(w, "\nFailures:")
		for _, e := range errs {
			fmt.Fprintln(w, "- "+e)
		}
	}
}

// targetChecks evaluates issue 6's targets where the cells were measured.
func targetChecks(st map[cellKey]cellStat) []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	mg := "mailgate-packs"
	packs, ok1 := st[cellKey{mg, "2k-text", 100}]
	pump, ok2 := st[cellKey{"byte-pump", "2k-text", 100}]
	if ok1 && ok2 && packs.n > 0 && pump.n > 0 {
		r := packs.msgs / pump.msgs
		out = append(out, fmt.Sprintf("2 KB at 100 sessions, packs ≥ 70%% of byte-pump msg/s: %.0f%% — %s", 100*r, verdict(r >= 0.7)))
	}
	har, ok3 := st[cellKey{"haraka", "2k-text", 100}]
	if ok1 && ok3 && packs.n > 0 && har.n > 0 {
		r := packs.msgs / har.msgs
		out = append(out, fmt.Sprintf("2 KB at 100 sessions, packs ≥ 3x Haraka msg/s: %.2fx — %s", r, verdict(r >= 3)))
	}
	p1, ok4 := st[cellKey{mg, "2k-text", 1}]
	d1, ok5 := st[cellKey{"direct", "2k-text", 1}]
	if ok4 && ok5 && p1.n > 0 && d1.n > 0 {
		a := p1.p50 - d1.p50
		out = append(out, fmt.Sprintf("2 KB at 1 session, packs' added p50 < 1 ms: %.2f ms — %s", a, verdict(a < 1)))
	}
	pm, ok6 := st[cellKey{mg, "1m-pdf", 100}]
	pp, ok7 := st[cellKey{"byte-pump", "1m-pdf", 100}]
	if ok6 && ok7 && pm.n > 0 && pp.n > 0 {
		r := pm.mb / pp.mb
		out = append(out, fmt.Sprintf("1 MB at 100 sessions, packs ≥ 60%% of byte-pump MB/s: %.0f%% — %s", 100*r, verdict(r >= 0.6)))
	}
	return out
}

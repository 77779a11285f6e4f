package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type memOptions struct {
	sessions int
	size     int64
	spread   time.Duration
	limitMiB int64
	target   string // "mailgate", or "byte-pump" to check the harness itself
}

// bigMessage is a multipart message of about size bytes whose attachment
// is base64 of pseudo-random bytes, already dot-stuffed for DATA (base64
// lines never start with a dot) and terminated.
func bigMessage(size int64) []byte {
	var b bytes.Buffer
	b.Grow(int(size) + 1024)
	b.WriteString("From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: memory test\r\n" +
		"Date: Mon, 2 Nov 2026 09:30:00 +0000\r\nMessage-ID: <memtest@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"mt\"\r\n\r\n--mt\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--mt\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	r := rand.New(rand.NewPCG(9, 9))
	raw := make([]byte, 57)
	line := make([]byte, 76)
	for int64(b.Len()) < size-100 {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString("--mt--\r\n.\r\n")
	return b.Bytes()
}

// memTest opens mo.sessions sessions to mailgate (policies/default.yaml,
// upstream smtp-sink), and has each send a mo.size message slowly, spread
// over mo.spread, all at once; it samples mailgate's RSS and fails when the
// peak reaches mo.limitMiB or a session does not get its 250.
func memTest(e *env, mo memOptions, stdout, stderr io.Writer) int {
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(e.work, &fsst); err == nil {
		free := int64(fsst.Bavail) * int64(fsst.Bsize)
		if need := int64(mo.sessions) * mo.size * 11 / 10; free < need {
			fmt.Fprintf(stderr, "memtest: %s has %d MiB free; the spool may need %d MiB\n", e.work, free>>20, need>>20)
			return 1
		}
	}
	sink, err := startSink(e)
	if err != nil {
		fmt.Fprintln(stderr, "memtest:", err)
		return 1
	}
	defer sink.stop()
	var t *target
	switch mo.target {
	case "mailgate":
		t, err = startMailgate(e, "mailgate-memtest", []string{filepath.Join(e.root, "policies", "default.yaml")}, mo.sessions+100)
	case "byte-pump":
		t, err = startPump(e)
		if t != nil {
			t.rssPid = t.proc.cmd.Process.Pid
		}
	default:
		err = fmt.Errorf("unknown -mem-target %q", mo.target)
	}
	if err != nil {
		fmt.Fprintln(stderr, "memtest:", err)
		return 1
	}
	defer t.proc.stop()
	msg := bigMessage(mo.size)
	const chunk = 64 << 10
	chunks := (len(msg) + chunk - 1) / chunk
	interval := mo.spread / time.Duration(chunks)
	fmt.Fprintf(stdout, "memtest: %d sessions × %.1f MiB, each over %v (%d chunks of 64 KiB every %v), %s pid %d\n",
		mo.sessions, float64(len(msg))/(1<<20), mo.spread, chunks, interval.Round(time.Millisecond), t.name, t.rssPid)

	rs := sampleRSS(t.rssPid, 250*time.Millisecond)
	var ok, inData atomic.Int64
	var sent atomic.Int64
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	deadline := time.Now().Add(mo.spread + 3*time.Minute)
	t0 := time.Now()
	for i := 0; i < mo.sessions; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Stagger the connects over the first 5 s.
			time.Sleep(time.Duration(i) * 5 * time.Second / time.Duration(mo.sessions))
			err := func() error {
				cl, err := dial(t.addr, 30*time.Second)
				if err != nil {
					return err
				}
				defer cl.c.Close()
				cl.c.SetDeadline(deadline)
				if err := cl.envelope(); err != nil {
					return err
				}
				inData.Add(1)
				defer inData.Add(-1)
				for off := 0; off < len(msg); off += chunk {
					end := min(off+chunk, len(msg))
					if _, err := cl.c.Write(msg[off:end]); err != nil {
						return fmt.Errorf("writing at %d: %w", off, err)
					}
					sent.Add(int64(end - off))
					time.Sleep(interval)
				}
				if _, err := cl.expect("250"); err != nil {
					return fmt.Errorf("end of data: %w", err)
				}
				cl.c.Write([]byte("QUIT\r\n"))
				return nil
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			ok.Add(1)
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			fmt.Fprintf(stderr, "memtest: %3.0fs  in DATA %4d  done %4d  failed %4d  sent %6.0f MiB  RSS now %6.1f MiB  max %6.1f MiB\n",
				time.Since(t0).Seconds(), inData.Load(), ok.Load(), len(errsSnapshot(&mu, &errs)),
				float64(sent.Load())/(1<<20), float64(procStatusKB(t.rssPid, "VmRSS"))/1024, float64(rs.max.Load())/1024)
		}
	}
	maxRSS := rs.end()
	hwm := procStatusKB(t.rssPid, "VmHWM")
	pass := hwm < mo.limitMiB*1024 && ok.Load() == int64(mo.sessions)
	fmt.Fprintf(stdout, "memtest: %d of %d sessions delivered in %s; %s peak RSS (VmHWM) %.1f MiB, largest sampled VmRSS %.1f MiB, limit %d MiB\n",
		ok.Load(), mo.sessions, time.Since(t0).Round(time.Second), t.name, float64(hwm)/1024, float64(maxRSS)/1024, mo.limitMiB)
	if len(errs) > 0 {
		fmt.Fprintf(stdout, "memtest: %d failures, first: %s\n", len(errs), errs[0])
	}
	if t.proc.exited() {
		fmt.Fprintf(stdout, "memtest: %s exited:\n%s\n", t.name, t.proc.output())
		pass = false
	}
	if !pass {
		fmt.Fprintln(stdout, "memtest: FAIL")
		return 1
	}
	fmt.Fprintln(stdout, "memtest: PASS")
	return 0
}

func errsSnapshot(mu *sync.Mutex, errs *[]string) []string {
	mu.Lock()
	defer mu.Unlock()
	return *errs
}

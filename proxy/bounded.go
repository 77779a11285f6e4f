package proxy

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Work that cannot be interrupted (expr's VM, the MIME parser and its
// inspectors) runs in a goroutine that the session stops waiting for at a
// deadline: timeouts.policy and timeouts.inspect are safety nets behind
// the load-time cost budget (docs/policy.md "Cost of a rule") and the
// parser's limits. A goroutine past its deadline is abandoned: it runs to
// its end on its own. At most maxAbandoned exist at once, server-wide;
// while that many run, new messages are tempfailed at once rather than
// adding CPU to the pile.

var (
	errWorkTimeout = errors.New("proxy: past its timeout")
	errWorkBusy    = errors.New("proxy: too many abandoned evaluations still running")
)

// maxAbandonedWork is the default bound of abandoned goroutines: one per
// CPU the process may use.
func maxAbandonedWork() int64 { return int64(max(runtime.GOMAXPROCS(0), 1)) }

const (
	workRunning int32 = iota
	workDone
	workAbandoned
)

// runBounded runs work and waits for it at most d. It returns nil when
// work finished in time; errWorkTimeout when it was abandoned (it then
// ends on its own); errWorkBusy, without running work, when the pile of
// abandoned work is full. A panic in work is raised again in the caller,
// whose session recovers it (docs/DEVELOPING.md rule 13); one in abandoned work
// is logged and counted there.
func (srv *Server) runBounded(d time.Duration, work func()) error {
	if srv.abandoned.Load() >= srv.maxAbandoned {
		return errWorkBusy
	}
	var state atomic.Int32
	var pv any // the panic's value and stack, read after done
	var stack []byte
	done := make(chan struct{})
	go func() {
		defer func() {
			if v := recover(); v != nil {
				pv, stack = v, debug.Stack()
			}
			close(done)
			if !state.CompareAndSwap(workRunning, workDone) {
				// Abandoned: nobody waits any more.
				if pv != nil {
					srv.metrics.panics.Inc()
					srv.panicCount.Add(1)
					srv.log.Error("panic in abandoned policy evaluation or parse", "panic", fmt.Sprint(pv), "stack", string(stack))
				}
				srv.abandoned.Add(-1)
			}
		}()
		work()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.abandoned.Add(1)
		if state.CompareAndSwap(workRunning, workAbandoned) {
			return errWorkTimeout
		}
		srv.abandoned.Add(-1) // it finished meanwhile
		<-done
	}
	if pv != nil {
		panic(fmt.Sprintf("%v\n%s", pv, stack))
	}
	return nil
}

// Abandoned is the number of abandoned evaluations and parses still
// running (tests).
func (srv *Server) Abandoned() int64 { return srv.abandoned.Load() }

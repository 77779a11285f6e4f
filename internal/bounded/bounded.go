// Package bounded runs work that cannot be interrupted (expr's VM, the MIME
// parser and its inspectors) with a deadline the caller stops waiting at:
// timeouts.policy and timeouts.inspect are safety nets behind the
// load-time cost budget (docs/policy.md "Cost of a rule") and the parser's
// limits. Work past its deadline is abandoned: it runs to its end on its
// own. At most Max abandoned goroutines exist at once per Runner; while
// that many run, new work is refused at once rather than adding CPU to
// the pile. Every front-end of one process shares one Runner.
package bounded

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

var (
	// ErrTimeout: the work was abandoned at its deadline.
	ErrTimeout = errors.New("past its timeout")
	// ErrBusy: the work did not run, the pile of abandoned work is full.
	ErrBusy = errors.New("too many abandoned evaluations or parses still running")
)

// Runner bounds work and counts what it abandoned.
type Runner struct {
	max       int64
	abandoned atomic.Int64
	// idle hands a job to a worker goroutine waiting for one: a worker
	// that finished its job waits up to workerIdle for the next, so the
	// stacks a parse or an evaluation grew are kept, not grown again from
	// scratch for every message (nil: a new goroutine each time).
	idle chan *Job
	// OnPanic is told about a panic in abandoned work (nobody waits to
	// re-raise it): log it and count it.
	OnPanic func(v any, stack []byte)
}

// New returns a Runner that abandons at most max goroutines at once; 0
// means one per CPU the process may use.
func New(max int64) *Runner {
	if max <= 0 {
		max = int64(runtime.GOMAXPROCS(0))
	}
	return &Runner{max: max, idle: make(chan *Job)}
}

// workerIdle is how long a worker goroutine waits for its next job.
const workerIdle = 10 * time.Second

const (
	workRunning int32 = iota
	workDone
	workAbandoned
)

// Run runs work and waits for it at most d. It returns nil when work
// finished in time; ErrTimeout when it was abandoned (it then ends on its
// own); ErrBusy, without running work, when the pile of abandoned work is
// full. A panic in work is raised again in the caller, whose session
// recovers it (docs/DEVELOPING.md rule 13); one in abandoned work goes to
// OnPanic.
func (r *Runner) Run(d time.Duration, work func()) error {
	j, err := r.Go(work)
	if err != nil {
		return err
	}
	return j.Wait(d)
}

// Job is work started by Go.
type Job struct {
	r     *Runner
	work  func() // nil once run
	state atomic.Int32
	done  chan struct{}
	start time.Time
	took  time.Duration // how long work ran, valid after done
	pv    any           // the panic's value and stack, read after done
	stack []byte
}

// Go starts work now, to be waited for later (a parse that reads the
// message while it arrives); ErrBusy when the pile of abandoned work is
// full. Every Job must be waited for once.
func (r *Runner) Go(work func()) (*Job, error) {
	if r.abandoned.Load() >= r.max {
		return nil, ErrBusy
	}
	j := &Job{r: r, work: work, done: make(chan struct{}), start: time.Now()}
	select {
	case r.idle <- j:
	default:
		go r.worker(j)
	}
	return j, nil
}

// worker runs j, then the jobs idle hands it until none comes for
// workerIdle.
func (r *Runner) worker(j *Job) {
	var t *time.Timer
	for {
		j.run()
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case j = <-r.idle:
		case <-t.C:
			return
		}
	}
}

// run runs the job's work: its panic is kept for the waiter, or told to
// OnPanic when the job was abandoned; the worker goes on either way.
func (j *Job) run() {
	r := j.r
	defer func() {
		if v := recover(); v != nil {
			j.pv, j.stack = v, debug.Stack()
		}
		j.took = time.Since(j.start)
		close(j.done)
		if !j.state.CompareAndSwap(workRunning, workDone) {
			// Abandoned: nobody waits any more.
			if j.pv != nil && r.OnPanic != nil {
				r.OnPanic(j.pv, j.stack)
			}
			r.abandoned.Add(-1)
		}
	}()
	work := j.work
	j.work = nil
	work()
}

// Wait waits for the job at most d (counted from its start): nil when it
// finished within d, ErrTimeout when it was abandoned, and ErrTimeout too
// when it finished but ran longer than d: whether the waiter saw the end
// or the deadline first is the scheduler's choice on a busy machine, and
// the answer must not depend on it. A panic in the job is raised again
// here.
func (j *Job) Wait(d time.Duration) error {
	t := time.NewTimer(d - time.Since(j.start))
	defer t.Stop()
	select {
	case <-j.done:
	case <-t.C:
		j.r.abandoned.Add(1)
		if j.state.CompareAndSwap(workRunning, workAbandoned) {
			return ErrTimeout
		}
		j.r.abandoned.Add(-1) // it finished meanwhile
		<-j.done
	}
	if j.pv != nil {
		panic(fmt.Sprintf("%v\n%s", j.pv, j.stack))
	}
	if j.took > d {
		return ErrTimeout
	}
	return nil
}

// Abandoned is the number of abandoned evaluations and parses still
// running.
func (r *Runner) Abandoned() int64 { return r.abandoned.Load() }

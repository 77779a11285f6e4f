package bounded

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	r := New(1)
	ran := false
	if err := r.Run(time.Second, func() { ran = true }); err != nil || !ran {
		t.Fatalf("quick work: %v, ran %v", err, ran)
	}
	release := make(chan struct{})
	if err := r.Run(10*time.Millisecond, func() { <-release }); !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow work: %v, want ErrTimeout", err)
	}
	if r.Abandoned() != 1 {
		t.Fatalf("abandoned %d, want 1", r.Abandoned())
	}
	if err := r.Run(time.Second, func() { t.Error("ran past a full pile") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("full pile: %v, want ErrBusy", err)
	}
	close(release)
	for i := 0; r.Abandoned() != 0; i++ {
		if i > 1000 {
			t.Fatal("abandoned work never ended")
		}
		time.Sleep(time.Millisecond)
	}
	if err := r.Run(time.Second, func() {}); err != nil {
		t.Fatalf("after the pile drained: %v", err)
	}
}

func TestRunPanics(t *testing.T) {
	r := New(1)
	func() {
		defer func() {
			if v := recover(); v == nil || !strings.Contains(v.(string), "boom") {
				t.Fatalf("recovered %v, want the work's panic", v)
			}
		}()
		r.Run(time.Second, func() { panic("boom") })
	}()
	got := make(chan any, 1)
	r.OnPanic = func(v any, stack []byte) { got <- v }
	release := make(chan struct{})
	r.Run(time.Millisecond, func() { <-release; panic("late") })
	close(release)
	select {
	case v := <-got:
		if v != "late" {
			t.Fatalf("OnPanic got %v", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnPanic not called for abandoned work")
	}
}

// TestRunLateFinish: work that finished but ran past its deadline is a
// timeout, whichever the waiter saw first.
func TestRunLateFinish(t *testing.T) {
	r := New(1)
	ran := make(chan struct{})
	j, err := r.Go(func() { time.Sleep(20 * time.Millisecond); close(ran) })
	if err != nil {
		t.Fatal(err)
	}
	// Done before Wait looks, however loaded the machine: the job's end,
	// then time for the runner to note it.
	<-ran
	time.Sleep(20 * time.Millisecond)
	if err := j.Wait(10 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("late finish: %v, want ErrTimeout", err)
	}
	if r.Abandoned() != 0 {
		t.Fatalf("a finished job counted as abandoned: %d", r.Abandoned())
	}
}

// Jobs one after the other run on reused worker goroutines, also after a
// job that panicked (a new one is started only when no worker waits: the
// last one may not be back in time).
func TestWorkerReused(t *testing.T) {
	r := New(1)
	func() {
		defer func() { recover() }()
		r.Run(time.Second, func() { panic("boom") })
	}()
	ids := map[string]bool{}
	for i := 0; i < 100; i++ {
		var id string
		if err := r.Run(time.Second, func() { id = goroutineID() }); err != nil || id == "" {
			t.Fatalf("job %d: %v", i, err)
		}
		ids[id] = true
	}
	if len(ids) > 10 {
		t.Errorf("100 jobs one after the other ran on %d goroutines: workers not reused", len(ids))
	}
}

func goroutineID() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

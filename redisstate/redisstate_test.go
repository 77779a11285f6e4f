package redisstate_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"mailgate/internal/e2e"
	"mailgate/mimeparse"
	"mailgate/redisstate"
	"mailgate/rules"
)

func newStore(t *testing.T, url string) *redisstate.Store {
	t.Helper()
	s, err := redisstate.New(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestRateAtomicAcrossClients: two clients (two instances' worth of
// connections) count the same key at once; every count from 1 to 2N comes
// back exactly once, so no hit was lost or counted twice.
func TestRateAtomicAcrossClients(t *testing.T) {
	r := e2e.StartRedis(t)
	a, b := newStore(t, r.URL), newStore(t, r.URL)
	const per = 100
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for _, s := range []*redisstate.Store{a, b} {
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per/4; i++ {
					n, err := s.Rate("sender@example.com", time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got = append(got, n)
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	slices.Sort(got)
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("counts %v...: want each of 1..%d once", got[:min(len(got), 20)], 2*per)
		}
	}
	if len(got) != 2*per {
		t.Fatalf("%d counts, want %d", len(got), 2*per)
	}
	// Other keys and other windows are counted apart.
	if n, _ := a.Rate("sender@example.com", time.Minute); n != 1 {
		t.Errorf("same key, other window: %d, want 1", n)
	}
	if n, _ := b.Rate("other@example.com", time.Hour); n != 1 {
		t.Errorf("other key: %d, want 1", n)
	}
}

// TestRateSlidingWindow: hits older than the window no longer count, and
// the key expires.
func TestRateSlidingWindow(t *testing.T) {
	r := e2e.StartRedis(t)
	s := newStore(t, r.URL)
	for i := 1; i <= 3; i++ {
		if n, err := s.Rate("k", 300*time.Millisecond); n != i || err != nil {
			t.Fatalf("hit %d: %d, %v", i, n, err)
		}
	}
	time.Sleep(350 * time.Millisecond)
	if n, _ := s.Rate("k", 300*time.Millisecond); n != 1 {
		t.Errorf("after the window: %d, want 1", n)
	}
	key := redisstate.Key("r", (300*time.Millisecond).String()+"\x00k")
	if ttl := pttl(t, r.Addr, key); ttl <= 0 || ttl > 1300 {
		t.Errorf("PTTL %s = %d ms, want within window+1s", key, ttl)
	}
}

// TestRateSameAsState: Redis and rules.State, the in-process LRU, give the
// same count for every hit of the same sequence of hits at the same times
// (rate() through Redis with the tests' clock instead of the server's, the
// same script otherwise): several keys and windows, hits close together,
// on bucket boundaries, across whole windows and after long pauses. In
// Redis a key holds at most rules.RateBuckets counters.
func TestRateSameAsState(t *testing.T) {
	r := e2e.StartRedis(t)
	var now time.Time
	clock := func() time.Time { return now }
	s := newStore(t, r.URL)
	redisstate.SetClock(s, clock)
	lru := rules.NewState(0, clock)
	windows := []time.Duration{time.Hour, time.Minute, 10 * time.Second, 7 * time.Millisecond, 10 * time.Microsecond}
	keys := []string{"from:a@example.com", "conn:192.0.2.1", "rcpt:b@example.org"}
	rnd := rand.New(rand.NewPCG(1, 2))
	now = time.Unix(1796000000, 0) // late 2026
	for i := 0; i < 3000; i++ {
		w := windows[rnd.IntN(len(windows))]
		key := keys[rnd.IntN(len(keys))]
		switch d := rnd.IntN(100); {
		case d < 60: // close together
			now = now.Add(time.Duration(rnd.Int64N(int64(w/rules.RateBuckets + 1))))
		case d < 80: // onto a bucket boundary or the µs before it
			width := time.Duration(rules.RateBucketWidth(w)) * time.Microsecond
			next := now.Truncate(width).Add(width)
			if rnd.IntN(2) == 0 {
				next = next.Add(-time.Microsecond)
			}
			if next.After(now) {
				now = next
			}
		case d < 98: // within a window
			now = now.Add(time.Duration(rnd.Int64N(int64(w))))
		default: // a long pause
			now = now.Add(time.Duration(rnd.Int64N(int64(3 * time.Hour))))
		}
		want, _ := lru.Rate(key, w)
		got, err := s.Rate(key, w)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("hit %d of %q in %s at %s: Redis %d, rules.State %d", i, key, w, now.Format(time.RFC3339Nano), got, want)
		}
		if i%50 == 0 {
			rk := redisstate.Key("r", w.String()+"\x00"+key)
			if n := hlen(t, r.Addr, rk); n < 1 || n > rules.RateBuckets {
				t.Fatalf("HLEN %s = %d, want 1..%d", rk, n, rules.RateBuckets)
			}
		}
	}
}

// TestGreylistAcrossClients: a triple first seen through one instance and
// retried after the delay through the other passes; before the delay it
// is deferred; the key is hashed and has a TTL.
func TestGreylistAcrossClients(t *testing.T) {
	r := e2e.StartRedis(t)
	a, b := newStore(t, r.URL), newStore(t, r.URL)
	key := rules.GreylistKey("192.0.2.7", "Sender@Example.com", "user@example.org")
	delay := 400 * time.Millisecond
	// First attempts race on both instances: both deferred, one first-seen.
	var wg sync.WaitGroup
	for _, s := range []*redisstate.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := s.Greylist(key, delay); !d || err != nil {
				t.Errorf("first attempt: deferred=%v, %v", d, err)
			}
		}()
	}
	wg.Wait()
	if d, _ := b.Greylist(key, delay); !d {
		t.Error("retry before the delay passed")
	}
	time.Sleep(delay + 50*time.Millisecond)
	if d, err := b.Greylist(key, delay); d || err != nil {
		t.Errorf("retry after the delay through the other instance: deferred=%v, %v", d, err)
	}
	if d, _ := a.Greylist(key, delay); d {
		t.Error("a passed triple deferred again")
	}
	// Same /24, other case: the same triple.
	if d, _ := a.Greylist(rules.GreylistKey("192.0.2.200", "sender@example.com", "USER@example.org"), delay); d {
		t.Error("the same triple from the same /24 deferred")
	}
	rk := redisstate.Key("g", key)
	if !strings.HasPrefix(rk, "mailgate:g:") || len(rk) != len("mailgate:g:")+32 {
		t.Errorf("key %q", rk)
	}
	if ttl := pttl(t, r.Addr, rk); ttl < int64(35*24*time.Hour/time.Millisecond) {
		t.Errorf("passed triple PTTL %d ms", ttl)
	}
	// Any string a message can carry makes a fixed-size printable key.
	long := strings.Repeat("\r\nDEL *\x00", 10000)
	if d, err := a.Greylist(rules.GreylistKey("x", long, long), delay); !d || err != nil {
		t.Errorf("hostile triple: %v %v", d, err)
	}
	if n := dbsize(t, r.Addr); n != 2 {
		t.Errorf("DBSIZE %d, want 2", n)
	}
}

// TestRedisDownThenBack: Redis killed → every operation fails fast with
// an error wrapping rules.ErrState (counted), and a rule reading rate()
// tempfails; Redis restarted → the same Store works again.
func TestRedisDownThenBack(t *testing.T) {
	r := e2e.StartRedis(t)
	s := newStore(t, r.URL)
	src := "rules:\n  - name: limit\n    stage: mail\n    when: 'rate(Envelope.From, \"1h\") > 2'\n    action: tempfail\n" +
		"  - name: grey\n    stage: rcpt\n    action: greylist\n    greylist: {delay: 1ms}\n"
	set, err := rules.LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, rules.Config{Policies: []string{"p.yaml"}, RuleError: rules.RuleErrorContinue}, s)
	if err != nil {
		t.Fatal(err)
	}
	f := &rules.Facts{Client: rules.Client{IP: "192.0.2.1"}, Envelope: rules.Envelope{From: "a@example.com"}, Rcpt: "b@example.org", Msg: &mimeparse.Message{}}
	ev := set.NewEvaluator()
	if v := ev.Eval(rules.StageMail, f); v.Action != rules.ActionContinue {
		t.Fatalf("Redis up: %s %v", v.Action, v.Errors)
	}
	r.Kill()
	start := time.Now()
	for _, stage := range []rules.Stage{rules.StageMail, rules.StageRcpt} {
		v := ev.Eval(stage, f)
		if v.Action != rules.ActionTempfail || v.Reply != rules.ReplyStateError || len(v.Errors) == 0 || !errors.Is(v.Errors[0], rules.ErrState) {
			t.Errorf("Redis down, stage %s: %s %v %v; want tempfail %v", stage, v.Action, v.Reply, v.Errors, rules.ReplyStateError)
		}
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("failing took %s", el)
	}
	if s.Errors() < 2 {
		t.Errorf("Errors() = %d, want the failures counted", s.Errors())
	}
	r.Restart()
	var v rules.Verdict
	for i := 0; i < 3; i++ { // the first command after a restart may meet a stale pooled connection
		if v = ev.Eval(rules.StageMail, f); v.Action == rules.ActionContinue {
			break
		}
	}
	if v.Action != rules.ActionContinue {
		t.Errorf("Redis back: %s %v", v.Action, v.Errors)
	}
	if v := ev.Eval(rules.StageRcpt, f); v.Action != rules.ActionTempfail || v.Rule != "grey" {
		t.Errorf("Redis back, greylist first attempt: %s %s %v", v.Action, v.Rule, v.Errors)
	}
}

func redisCmd(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "%s\r\n", cmd)
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

func pttl(t *testing.T, addr, key string) int64 {
	var n int64
	fmt.Sscanf(redisCmd(t, addr, "PTTL "+key), ":%d", &n)
	return n
}

func hlen(t *testing.T, addr, key string) int64 {
	var n int64
	fmt.Sscanf(redisCmd(t, addr, "HLEN "+key), ":%d", &n)
	return n
}

func dbsize(t *testing.T, addr string) int64 {
	var n int64
	fmt.Sscanf(redisCmd(t, addr, "DBSIZE"), ":%d", &n)
	return n
}

func newStoreB(url string) (*redisstate.Store, error) { return redisstate.New(url) }

package redisstate_test

import (
	"testing"
	"time"

	"mailgate/internal/e2e"
	"mailgate/rules"
)

// BenchmarkRate is one rate() against a private Redis (a Lua script round
// trip on loopback), against the in-process LRU: what each rate() call of
// a policy costs with state: redis.
func BenchmarkRate(b *testing.B) {
	r := e2e.StartRedis(b)
	s, err := newStoreB(r.URL)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.Run("redis", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.Rate("from:alice@example.org", time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Rate("from:alice@example.org", time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	lru := rules.NewState(0, nil)
	b.Run("lru", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			lru.Rate("from:alice@example.org", time.Hour)
		}
	})
}

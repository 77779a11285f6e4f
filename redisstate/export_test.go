package redisstate

import "time"

// SetClock makes s's rate() count at now() instead of the Redis server's
// TIME (the same script otherwise), so a test can replay hits at chosen
// times in Redis and in rules.State.
func SetClock(s *Store, now func() time.Time) {
	s.rate = newRateScript("tonumber(ARGV[3])")
	s.now = now
}

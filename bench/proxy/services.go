package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ratePolicy is what the shared-state targets add to the default pack: two
// rate() calls a message (per client at connect, per sender at MAIL), with
// limits no bench run reaches, so every message is counted and none
// refused (issue 15: "rate-limited small messages").
const ratePolicy = `rules:
  - name: bench-client-rate
    stage: connect
    when: 'rate("conn:" + Client.IP, "1h") > 1000000000'
    action: tempfail
  - name: bench-sender-rate
    stage: mail
    when: 'rate("from:" + lower(Envelope.From), "1h") > 1000000000'
    action: tempfail
`

// startServiceTarget starts the targets that need a service beside
// mailgate:
//
//	mailgate-rate-lru       default pack + ratePolicy, state in the process
//	mailgate-rate-redis     the same, state in a private redis-server
//	mailgate-rate-redis-x2  two instances sharing that Redis, the load split between them
//	mailgate-rate-lru-x2    two instances, each with its own state in the process (counts
//	                        not shared): what the second process costs without Redis
//	mailgate-av-off         default pack + policies/facts/antivirus.yaml's rules with no clamd (baseline)
//	mailgate-av             default pack + antivirus.yaml, scanning with a private clamd
//
// -x1-procs and -x2-procs (e.x1Procs, e.x2Procs) set GOMAXPROCS of each
// mailgate of the one- and two-instance rate targets.
func startServiceTarget(e *env, name string) (*target, error) {
	dflt := filepath.Join(e.root, "policies", "default.yaml")
	switch name {
	case "mailgate-rate-lru", "mailgate-rate-lru-x2", "mailgate-rate-redis", "mailgate-rate-redis-x2":
		rp := filepath.Join(e.work, "bench-rate.yaml")
		if err := os.WriteFile(rp, []byte(ratePolicy), 0o644); err != nil {
			return nil, err
		}
		pols := []string{dflt, rp}
		procs := e.x1Procs
		if strings.HasSuffix(name, "-x2") {
			procs = e.x2Procs
		}
		if name == "mailgate-rate-lru" {
			return startMailgateProcs(e, name, pols, 2000, "", procs)
		}
		if name == "mailgate-rate-lru-x2" {
			t, err := startMailgateProcs(e, name, pols, 2000, "", procs)
			if err != nil {
				return nil, err
			}
			t2, err := startMailgateProcs(e, name+"-2", pols, 2000, "", procs)
			if err != nil {
				t.stop()
				return nil, err
			}
			t.more = append(t.more, t2)
			return t, nil
		}
		rd, url, err := startRedis(e, name)
		if err != nil {
			return nil, err
		}
		extra := fmt.Sprintf("state: {redis: %q}\n", url)
		t, err := startMailgateProcs(e, name, pols, 2000, extra, procs)
		if err != nil {
			rd.stop()
			return nil, err
		}
		t.services = append(t.services, rd)
		if name == "mailgate-rate-redis-x2" {
			t2, err := startMailgateProcs(e, name+"-2", pols, 2000, extra, procs)
			if err != nil {
				t.stop()
				return nil, err
			}
			t.more = append(t.more, t2)
		}
		return t, nil
	case "mailgate-av-off":
		return startMailgateExtra(e, name, []string{dflt}, 2000, "")
	case "mailgate-av":
		cd, addr, err := startClamd(e)
		if err != nil {
			return nil, err
		}
		av := filepath.Join(e.root, "policies", "facts", "antivirus.yaml")
		t, err := startMailgateExtra(e, name, []string{dflt, av}, 2000, fmt.Sprintf("clamd: {address: %q, timeout: 60s, max_size: 25MiB}\n", addr))
		if err != nil {
			cd.stop()
			return nil, err
		}
		t.services = append(t.services, cd)
		return t, nil
	}
	return nil, fmt.Errorf("unknown target %q", name)
}

// startRedis starts a private redis-server (loopback, no persistence).
func startRedis(e *env, name string) (*proc, string, error) {
	dir := filepath.Join(e.work, name+"-redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	port := freePort()
	p, err := start("redis-server", dir, nil, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitReply(p, addr, "PING\r\n", "+PONG\r\n", '\n'); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, "redis://" + addr + "/0", nil
}

// eicar is the antivirus test string; the private clamd's only signature.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// startClamd starts a private clamd whose database is one .ndb signature
// (there are no official signatures offline, and clamd refuses an empty
// database).
func startClamd(e *env) (*proc, string, error) {
	dir := filepath.Join(e.work, "clamd")
	db, tmp := filepath.Join(dir, "db"), filepath.Join(dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, "", err
		}
	}
	sig := fmt.Sprintf("Bench-EICAR:0:*:%s\n", hex.EncodeToString([]byte(eicar)))
	if err := os.WriteFile(filepath.Join(db, "bench.ndb"), []byte(sig), 0o644); err != nil {
		return nil, "", err
	}
	port := freePort()
	conf := strings.Join([]string{"Foreground yes", "DatabaseDirectory " + db, "TemporaryDirectory " + tmp,
		"LogFile " + filepath.Join(dir, "clamd.log"), "PidFile " + filepath.Join(dir, "clamd.pid"),
		fmt.Sprintf("TCPSocket %d", port), "TCPAddr 127.0.0.1", "SelfCheck 0", "MaxThreads 20", "MaxQueue 200"}, "\n") + "\n"
	cf := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := start("clamd", dir, nil, "/usr/sbin/clamd", "-c", cf)
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitReply(p, addr, "zPING\x00", "PONG\x00", 0); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, "tcp://" + addr, nil
}

// waitReply sends req to addr until it answers want (read up to delim).
func waitReply(p *proc, addr, req, want string, delim byte) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.output())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte(req))
			var line string
			line, err = bufio.NewReader(c).ReadString(delim)
			c.Close()
			if err == nil && line == want {
				return nil
			}
			if err == nil {
				err = fmt.Errorf("answered %q", line)
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s on %s: not ready within 30s: %v", p.name, addr, last)
}

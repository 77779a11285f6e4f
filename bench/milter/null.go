package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	mgmilter "mailgate/milter"
)

// The null milter (targets postfix+nullmilter and postfix+nullmilter-min):
// a milter that answers continue to every event and accept at the end of
// the message, with no edits and no parsing, so that the cost of the
// milter protocol itself — Postfix's side of it above all — can be told
// from mailgate's. The harness runs it as a separate process (itself, with
// -null-listen), so its CPU is read from /proc like mailgate's.
//
// postfix+nullmilter negotiates what mailgate's milter negotiates
// (milter/server.go: protocol 6, the same actions, the same protocol
// options and no-reply stages, the same macro requests); the harness
// checks this before measuring by comparing the two option-negotiation
// replies byte for byte (probeNegotiation). Its connections behave like
// mailgate's on the wire (milter/conn.go, milter/quickack_linux.go):
// coalesced writes, lazy deadlines, TCP_QUICKACK before every socket read
// (without it, Postfix's Nagle and the kernel's delayed ACK stall each
// stage ~40 ms, which would measure a stall, not Postfix).
//
// postfix+nullmilter-min asks Postfix to skip every event it can (connect,
// HELO, MAIL, RCPT, DATA, unknown commands, headers, end of headers, body),
// no actions and no macro lists of its own: Postfix then opens the
// connection, negotiates and sends only the end of the message: the floor
// of any milter.

// mailgate's negotiation (milter/server.go wantActions, wantProtocol and
// its macro requests; keep in step).
const (
	nullActions = gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeBody |
		gomilter.OptAddRcpt | gomilter.OptRemoveRcpt | gomilter.OptQuarantine
	nullProtocol = gomilter.OptNoUnknown | gomilter.OptNoData | gomilter.OptNoHeaderReply |
		gomilter.OptNoEOHReply | gomilter.OptNoBodyReply | gomilter.OptHeaderLeadingSpace
	// nullReadTimeout is mailgate's with its default timeouts:
	// 2 × max(timeouts.command 1m, timeouts.data_idle 5m).
	nullReadTimeout = 10 * time.Minute

	// minProtocol skips every event but the end of the message.
	minProtocol = gomilter.OptNoConnect | gomilter.OptNoHelo | gomilter.OptNoMailFrom | gomilter.OptNoRcptTo |
		gomilter.OptNoBody | gomilter.OptNoHeaders | gomilter.OptNoEOH | gomilter.OptNoUnknown | gomilter.OptNoData
	// noReplyStages are the no-reply options mailgate adds for the stages
	// its loaded policies have no rule at (milter/server.go noReplies).
	noReplyStages = gomilter.OptNoConnReply | gomilter.OptNoHeloReply | gomilter.OptNoMailReply | gomilter.OptNoRcptReply
)

// nullServer is the null milter on l: full (mailgate's negotiation, with
// noReply the no-reply stage options mailgate negotiated) or min.
func nullServer(min bool, noReply gomilter.OptProtocol) *gomilter.Server {
	if min {
		return gomilter.NewServer(
			gomilter.WithMilter(func() gomilter.Milter { return nullMilter{} }),
			gomilter.WithActions(0),
			gomilter.WithReadTimeout(nullReadTimeout),
			gomilter.WithProtocols(minProtocol),
			gomilter.WithNegotiationCallback(func(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
				return min2(mtaVersion, milterVersion), 0, milterProtocol & mtaProtocol, offered, nil
			}),
		)
	}
	return gomilter.NewServer(
		gomilter.WithMilter(func() gomilter.Milter { return nullMilter{} }),
		gomilter.WithActions(nullActions),
		gomilter.WithReadTimeout(nullReadTimeout),
		gomilter.WithProtocols(nullProtocol),
		// mailgate's negotiate, with its no-reply stages given.
		gomilter.WithNegotiationCallback(func(mtaVersion, milterVersion uint32, mtaActions, milterActions gomilter.OptAction, mtaProtocol, milterProtocol gomilter.OptProtocol, offered gomilter.DataSize) (uint32, gomilter.OptAction, gomilter.OptProtocol, gomilter.DataSize, error) {
			v := min2(mtaVersion, milterVersion)
			if v < 2 {
				return 0, 0, 0, 0, fmt.Errorf("milter: MTA protocol version %d", mtaVersion)
			}
			return v, milterActions & mtaActions, (milterProtocol | noReply&noReplyStages) & mtaProtocol, offered, nil
		}),
		gomilter.WithMacroRequest(gomilter.StageConnect, []string{gomilter.MacroClientAddr, gomilter.MacroClientName,
			gomilter.MacroDaemonAddr, gomilter.MacroDaemonPort, gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageHelo, []string{gomilter.MacroTlsVersion}),
		gomilter.WithMacroRequest(gomilter.StageMail, []string{gomilter.MacroAuthAuthen, gomilter.MacroTlsVersion, gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageRcpt, []string{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOH, []string{gomilter.MacroQueueId}),
		gomilter.WithMacroRequest(gomilter.StageEOM, []string{gomilter.MacroQueueId}),
	)
}

func min2(a, b uint32) uint32 { return min(a, b) }

// serveNull serves the null milters on full and minAddr, and the full one
// on the unix socket sock too when it is set, until the process ends (the
// harness kills it).
func serveNull(fullAddr, minAddr, sock string, noReply gomilter.OptProtocol) error {
	errc := make(chan error, 3)
	type addr struct {
		network, addr string
		min           bool
	}
	addrs := []addr{{"tcp", fullAddr, false}, {"tcp", minAddr, true}}
	if sock != "" {
		addrs = append(addrs, addr{"unix", sock, false})
	}
	for _, a := range addrs {
		l, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), a.network, a.addr)
		if err != nil {
			return err
		}
		if a.network == "unix" {
			if err := os.Chmod(a.addr, 0o666); err != nil { // Postfix runs as postfix
				return err
			}
		}
		go func() { errc <- nullServer(a.min, noReply).Serve(mgmilter.Listener(l)) }()
	}
	return <-errc
}

// nullMilter answers continue to every event and accept at the end.
type nullMilter struct{ gomilter.NoOpMilter }

func (nullMilter) RcptTo(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (nullMilter) Header(string, string, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

func (nullMilter) BodyChunk([]byte, gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Postfix's offer in its option negotiation (milter_protocol = 6): version
// 6, every action of protocol 6, every protocol option.
const (
	mtaVersion  = 6
	mtaActions  = 0x1ff
	mtaProtocol = 0x1fffff
)

// probeNegotiation sends addr the option negotiation Postfix sends and
// returns the milter's reply packet as it came.
func probeNegotiation(addr string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	pkt := make([]byte, 4+1+12)
	binary.BigEndian.PutUint32(pkt, 13)
	pkt[4] = 'O'
	binary.BigEndian.PutUint32(pkt[5:], mtaVersion)
	binary.BigEndian.PutUint32(pkt[9:], mtaActions)
	binary.BigEndian.PutUint32(pkt[13:], mtaProtocol)
	if _, err := c.Write(pkt); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 13 || n > 1<<16 {
		return nil, fmt.Errorf("negotiation reply of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		return nil, err
	}
	if body[0] != 'O' {
		return nil, fmt.Errorf("negotiation reply %q", body[0])
	}
	return body, nil
}

// negotiation decodes a reply of probeNegotiation.
type negotiation struct {
	version  uint32
	actions  gomilter.OptAction
	protocol gomilter.OptProtocol
	macros   map[uint32]string // stage: the names, space-separated
}

func decodeNegotiation(b []byte) (negotiation, error) {
	if len(b) < 13 || b[0] != 'O' {
		return negotiation{}, errors.New("not a negotiation reply")
	}
	n := negotiation{
		version:  binary.BigEndian.Uint32(b[1:]),
		actions:  gomilter.OptAction(binary.BigEndian.Uint32(b[5:])),
		protocol: gomilter.OptProtocol(binary.BigEndian.Uint32(b[9:])),
		macros:   map[uint32]string{},
	}
	rest := b[13:]
	for len(rest) > 0 {
		if len(rest) < 5 {
			return n, errors.New("short macro list")
		}
		stage := binary.BigEndian.Uint32(rest)
		names, after, ok := strings.Cut(string(rest[4:]), "\x00")
		if !ok {
			return n, errors.New("unterminated macro list")
		}
		n.macros[stage] = names
		rest = []byte(after)
	}
	return n, nil
}

func (n negotiation) String() string {
	var ms []string
	for st := uint32(0); st < 8; st++ {
		if v, ok := n.macros[st]; ok {
			ms = append(ms, fmt.Sprintf("%d:%q", st, v))
		}
	}
	return fmt.Sprintf("version %d, actions %#x, protocol %#x, macros [%s]", n.version, uint32(n.actions), uint32(n.protocol), strings.Join(ms, " "))
}

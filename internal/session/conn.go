package session

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// closeFlushTimeout bounds how long a closing connection may take to flush
// its last messages (a NOTIFICATION) to a peer that does not read.
const closeFlushTimeout = 5 * time.Second

// conn is one TCP connection: a reader goroutine that frames messages and
// feeds events to the peer loop, and a writer goroutine that batches queued
// messages through a buffered writer.
type conn struct {
	nc       net.Conn
	incoming bool

	mu      sync.Mutex
	queue   [][]byte
	closing bool
	wake    chan struct{} // cap 1: queue or closing changed
	done    chan struct{} // closed when the writer finished and the socket is closed
	stopped chan struct{} // closed by shutdown: the reader must not block on the peer loop

	stopOnce sync.Once
	msgsOut  *atomic.Uint64
}

func newConn(nc net.Conn, incoming bool, msgsOut *atomic.Uint64) *conn {
	return &conn{
		nc:       nc,
		incoming: incoming,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		msgsOut:  msgsOut,
	}
}

// enqueue queues whole messages for the writer; it never blocks and never
// drops, except after close was requested.
func (c *conn) enqueue(msgs ...[]byte) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, msgs...)
	c.mu.Unlock()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close makes the writer flush what is queued, then close the socket; the
// reader then fails and exits. It does not wait.
func (c *conn) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.stopOnce.Do(func() { close(c.stopped) })
	c.signal()
}

// writeLoop writes queued messages in batches: one Flush (one syscall for
// up to the buffer size) per batch, not per message.
func (c *conn) writeLoop() {
	defer close(c.done)
	defer c.nc.Close()
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	var batch [][]byte
	for {
		<-c.wake
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		closing := c.closing
		c.mu.Unlock()
		if closing {
			_ = c.nc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		}
		for i, m := range batch {
			if _, err := bw.Write(m); err != nil {
				return
			}
			batch[i] = nil
		}
		if err := bw.Flush(); err != nil {
			return
		}
		c.msgsOut.Add(uint64(len(batch)))
		if closing {
			return
		}
	}
}

// readLoop frames messages (RFC 4271 §4.1, §6.1), turns them into events and
// hands them to deliver; it returns after the first error, having delivered
// TCPClosed or MessageError.
func (c *conn) readLoop(deliver func(*conn, Event) bool, msgsIn *atomic.Uint64) {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [bgp.BGP_HEADER_LENGTH]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			deliver(c, TCPClosed{Err: readErr(err)})
			return
		}
		if merr := checkHeader(hdr[:]); merr != nil {
			deliver(c, *merr)
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[16:18]))
		copy(msg, hdr[:])
		if _, err := io.ReadFull(br, msg[bgp.BGP_HEADER_LENGTH:]); err != nil {
			deliver(c, TCPClosed{Err: readErr(err)})
			return
		}
		msgsIn.Add(1)
		ev := decodeMessage(msg)
		if !deliver(c, ev) {
			return
		}
		if _, bad := ev.(MessageError); bad {
			return
		}
	}
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("peer closed the connection: %w", err)
	}
	return fmt.Errorf("reading from peer: %w", err)
}

// minLen and maxLen bound the length of each message type (RFC 4271 §4,
// RFC 2918 §3).
var minLen = [6]uint16{0, 29, 23, 21, 19, 23}

// checkHeader checks the 19-byte header (RFC 4271 §6.1).
func checkHeader(h []byte) *MessageError {
	for _, b := range h[:16] {
		if b != 0xff {
			return &MessageError{Code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, Subcode: bgp.BGP_ERROR_SUB_CONNECTION_NOT_SYNCHRONIZED}
		}
	}
	l := binary.BigEndian.Uint16(h[16:18])
	t := h[18]
	if t < bgp.BGP_MSG_OPEN || t > bgp.BGP_MSG_ROUTE_REFRESH {
		return &MessageError{Code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, Subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_TYPE, Data: []byte{t}}
	}
	bad := l < bgp.BGP_HEADER_LENGTH || l > bgp.BGP_MAX_MESSAGE_LENGTH || l < minLen[t] ||
		(t == bgp.BGP_MSG_KEEPALIVE && l != bgp.BGP_HEADER_LENGTH) ||
		(t == bgp.BGP_MSG_ROUTE_REFRESH && l != minLen[t])
	if bad {
		// The data is the erroneous Length field.
		return &MessageError{Code: bgp.BGP_ERROR_MESSAGE_HEADER_ERROR, Subcode: bgp.BGP_ERROR_SUB_BAD_MESSAGE_LENGTH, Data: []byte{h[16], h[17]}}
	}
	return nil
}

// decodeMessage turns one framed message into an FSM event. UPDATE is not
// decoded: the whole message goes up.
func decodeMessage(msg []byte) Event {
	body := msg[bgp.BGP_HEADER_LENGTH:]
	switch msg[18] {
	case bgp.BGP_MSG_UPDATE:
		return UpdateReceived{Msg: msg}
	case bgp.BGP_MSG_KEEPALIVE:
		return KeepaliveReceived{}
	case bgp.BGP_MSG_NOTIFICATION:
		n := NotificationReceived{Code: body[0], Subcode: body[1]}
		if len(body) > 2 {
			n.Data = body[2:]
		}
		return n
	case bgp.BGP_MSG_ROUTE_REFRESH:
		return RouteRefreshReceived{Family: route.NewFamily(binary.BigEndian.Uint16(body), body[3])}
	}
	m, err := bgp.ParseBGPMessage(msg)
	if err != nil {
		var me *bgp.MessageError
		if errors.As(err, &me) {
			return MessageError{Code: me.TypeCode, Subcode: me.SubTypeCode, Data: me.Data}
		}
		return MessageError{Code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR}
	}
	o, ok := m.Body.(*bgp.BGPOpen)
	if !ok {
		return MessageError{Code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR}
	}
	return OpenReceived{Open: o}
}

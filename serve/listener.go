package serve

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	wire "github.com/jeroenrinzema/psql-wire"
)

// sslRequest is the code of the PostgreSQL message asking for TLS.
const sslRequest = 80877103

// listener admits connections: it counts the open ones and notes whether
// each client asked for TLS, which the authentication step reads (by the
// client's address) before it accepts a password.
type listener struct {
	net.Listener
	max   int
	open  atomic.Int64
	conns sync.Map // remote address → *clientConn
	once  sync.Once
	// wrote is when a connection last sent bytes (Unix nanoseconds): a
	// graceful stop waits for clients that keep reading.
	wrote atomic.Int64
}

// Close closes the listener once; psql-wire closes it again on its own
// Close.
func (l *listener) Close() error {
	var err error
	l.once.Do(func() {
		if l.Listener != nil {
			err = l.Listener.Close()
		}
	})
	return err
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &clientConn{Conn: c, l: l, over: l.open.Add(1) > int64(l.max)}
	l.conns.Store(c.RemoteAddr().String(), cc)
	return cc, nil
}

// client is the admission record of the connection ctx serves.
func (l *listener) client(ctx context.Context) (*clientConn, error) {
	addr := wire.RemoteAddress(ctx)
	if addr == nil {
		return nil, errors.New("serve: connection without an address")
	}
	c, ok := l.conns.Load(addr.String())
	if !ok {
		return nil, errors.New("serve: unknown connection " + addr.String())
	}
	return c.(*clientConn), nil
}

// clientConn is one client's connection.
type clientConn struct {
	net.Conn
	l    *listener
	over bool // opened beyond max_connections

	head      [8]byte // the first message's length and code
	headRead  int
	askedTLS  bool
	closeOnce sync.Once
}

// Read notes whether the client's first message asks for TLS.
func (c *clientConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.headRead < len(c.head) {
		c.headRead += copy(c.head[c.headRead:], b[:n])
		if c.headRead == len(c.head) {
			c.askedTLS = binary.BigEndian.Uint32(c.head[4:]) == sslRequest
		}
	}
	return n, err
}

// Write notes that the connection made progress.
func (c *clientConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.l.wrote.Store(time.Now().UnixNano())
	}
	return n, err
}

// quiet waits until no connection has sent anything for d, or ctx ends.
func (l *listener) quiet(ctx context.Context, d time.Duration) {
	tick := time.NewTicker(d / 5)
	defer tick.Stop()
	for time.Since(time.Unix(0, l.wrote.Load())) < d {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (c *clientConn) Close() error {
	c.closeOnce.Do(func() {
		c.l.open.Add(-1)
		c.l.conns.Delete(c.RemoteAddr().String())
	})
	return c.Conn.Close()
}

// loopback: the client connects from this machine.
func (c *clientConn) loopback() bool {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	return true // a Unix socket
}

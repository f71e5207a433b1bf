package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
)

// DialContextIn returns a dial function whose sockets are created in the
// named network namespace, for an http.Transport reaching a daemon that
// listens on the namespace's own loopback. The socket is opened on a
// locked OS thread switched into the namespace (a socket stays in the
// namespace it was created in); the thread is switched back before it is
// unlocked, or left locked (and so discarded by the Go runtime) if that
// fails. Only numeric addresses are supported: a name could make the
// dialer resolve or race several addresses on other threads.
func DialContextIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("dialing %s in namespace %s: only numeric addresses are supported", addr, ns)
		}
		target, err := netns.GetFromName(ns)
		if err != nil {
			return nil, fmt.Errorf("dialing %s: cannot open network namespace %s: %w", addr, ns, err)
		}
		defer target.Close()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("dialing %s: cannot get the current network namespace: %w", addr, err)
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("dialing %s: cannot enter network namespace %s: %w", addr, ns, err)
		}
		var d net.Dialer
		conn, dialErr := d.DialContext(ctx, network, addr)
		if err := netns.Set(orig); err != nil {
			// The thread stays in ns: keep it locked so that it exits
			// with this goroutine instead of serving others.
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("dialing %s: cannot return from network namespace %s: %w", addr, ns, err)
		}
		runtime.UnlockOSThread()
		return conn, dialErr
	}
}

// HTTPClient returns an HTTP client whose connections are made in the
// named network namespace (see DialContextIn), without keep-alive (a
// daemon restarted between two requests must not leave a dead pooled
// connection behind).
func HTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       DialContextIn(ns),
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

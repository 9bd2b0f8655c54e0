package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// ErrNotLoopback refuses a target outside this machine: the tool is a
// load generator and must never be pointed at someone else's server.
var ErrNotLoopback = errors.New("load: the target must be a loopback address (127.0.0.0/8, ::1 or localhost)")

// checkTarget parses target and refuses anything but http on a loopback
// address. Host names other than localhost are refused without a DNS
// lookup, so the check itself contacts nothing.
func checkTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("load: target %q: %w", target, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("load: target %q: only http:// is supported (loopback needs no TLS)", target)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil // the dialer checks the address it resolves to
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, target)
	}
	return u, nil
}

// loopbackOnly is a dialer Control that refuses every non-loopback
// address: a redirect or a DNS answer cannot lead the tool off the
// machine either.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: dial %s %s", ErrNotLoopback, network, address)
	}
	return nil
}

// newClient is an HTTP client whose connections can only reach loopback
// and whose idle pool holds as many connections as requests in flight.
func newClient(conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: loopbackOnly}
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // report the redirect, do not follow it
		},
	}
}

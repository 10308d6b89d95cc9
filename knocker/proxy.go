package knocker

import (
	"context"
	"errors"
	"io"
	"net"
)

// Proxy relays between conn and the pair stdin/stdout until conn's peer
// closes the connection, an error occurs or ctx ends; it closes conn before
// returning. When stdin ends, the write half of conn is closed (if conn
// supports it) so that the peer sees end of file, as ssh's ProxyCommand
// expects.
//
// A read from stdin cannot be interrupted portably, so after Proxy returns
// one goroutine may stay blocked in stdin.Read until stdin delivers data or
// is closed; a program that exits afterwards does not care.
func Proxy(ctx context.Context, conn net.Conn, stdin io.Reader, stdout io.Writer) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok && err == nil {
			err = cw.CloseWrite()
		}
		up <- err
	}()

	down := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, conn)
		down <- err
	}()

	var err error
	select {
	case err = <-down:
	case err = <-up:
		if err == nil {
			// stdin is done and the peer knows it; keep relaying its answer.
			err = <-down
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

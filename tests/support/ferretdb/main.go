// Command mysync-ferretdb runs an embedded FerretDB v1 (SQLite backend) as a
// second MongoDB-wire server for mysync's integration-test rig.
//
// Usage:
//
//	mysync-ferretdb -listen 127.0.0.1:0 -data DIR
//
// Once the listener is bound, exactly one line "READY <port>" is printed to
// stdout. Logs go to stderr at warn level. SIGTERM/SIGINT shut it down cleanly.
//
// Telemetry: the embedded package (github.com/FerretDB/FerretDB/ferretdb)
// never creates the telemetry reporter (that lives only in cmd/ferretdb, which
// is not linked in); ferretdb.New additionally marks telemetry as disabled and
// locked in its in-memory state provider. No OpenTelemetry exporter is
// configured, so the global otel provider stays a no-op. The environment
// variables below are set purely as belt and braces.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	os.Exit(run())
}

func run() int {
	listen := flag.String("listen", "127.0.0.1:0", "loopback TCP address to listen on (port 0 = pick a free port)")
	data := flag.String("data", "", "directory for SQLite databases (created if missing)")
	flag.Parse()

	// Not read by the embedded package, but harmless and future-proof.
	os.Setenv("FERRETDB_TELEMETRY", "disable")
	os.Setenv("DO_NOT_TRACK", "1")

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(logger)

	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "mysync-ferretdb: "+format+"\n", args...)
		return 1
	}

	if *data == "" {
		return fail("-data DIR is required")
	}

	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return fail("bad -listen %q: %v", *listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fail("-listen host must be a loopback IP address, got %q", host)
	}
	if _, err = strconv.ParseUint(port, 10, 16); err != nil {
		return fail("bad -listen port %q: %v", port, err)
	}

	dir, err := filepath.Abs(*data)
	if err != nil {
		return fail("bad -data %q: %v", *data, err)
	}
	if err = os.MkdirAll(dir, 0o755); err != nil {
		return fail("cannot create -data dir: %v", err)
	}

	// SQLite handler wants a "file:" URI naming an existing directory, with a trailing slash.
	sqliteURL := "file:" + (&url.URL{Path: dir + "/"}).EscapedPath()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// After the first signal, restore default handling so that a second
	// SIGTERM/SIGINT kills the process immediately. (FerretDB gives open
	// client connections up to 3 s to finish after cancellation.)
	go func() {
		<-ctx.Done()
		stop()
	}()

	// ferretdb.New binds the TCP listener (net.Listen) synchronously, so the
	// actual port is known (and connections are queued by the kernel) as soon
	// as it returns; Run starts the accept loop.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			TCP: net.JoinHostPort(host, port),
		},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	if err != nil {
		return fail("%v", err)
	}

	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	u, err := url.Parse(f.MongoDBURI())
	if err != nil || u.Port() == "" {
		stop()
		<-done
		return fail("cannot determine bound port from %q: %v", f.MongoDBURI(), err)
	}

	if _, err = fmt.Fprintf(os.Stdout, "READY %s\n", u.Port()); err != nil {
		stop()
		<-done
		return fail("write READY: %v", err)
	}
	_ = os.Stdout.Sync() // unbuffered *os.File; Sync is a no-op on pipes

	if err = <-done; err != nil && !errors.Is(err, context.Canceled) {
		return fail("run: %v", err)
	}

	return 0
}

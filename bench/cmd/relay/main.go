// Command relay is the benchmark's minimal PostgreSQL relay (see package
// bench/relay): relay -listen 127.0.0.1:PORT -target HOST:PORT. It prints
// "listening on ADDR" once it accepts connections and runs until killed.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/sluice-gw/sluice/bench/relay"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	target := flag.String("target", "", "next hop HOST:PORT (required)")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "relay: -target is required")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := relay.Serve(ln, *target); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

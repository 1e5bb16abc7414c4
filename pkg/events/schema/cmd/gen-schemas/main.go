// Command gen-schemas regenerates the event reference in docs/ (JSON Schemas,
// asyncapi.yaml, events.md) from the Go types in pkg/events.
//
//	go run ./pkg/events/schema/cmd/gen-schemas            # from the repository root
//	go run ./pkg/events/schema/cmd/gen-schemas -check     # fail if docs/ is out of date
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/slipway-cd/slipway/pkg/events/schema"
)

func main() {
	docs := flag.String("docs", "docs", "the repository's docs directory")
	check := flag.Bool("check", false, "only report files that differ from the generated ones")
	flag.Parse()
	if *check {
		problems, err := schema.Diff(*docs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gen-schemas:", err)
			os.Exit(1)
		}
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		if len(problems) > 0 {
			os.Exit(1)
		}
		return
	}
	if err := schema.Write(*docs); err != nil {
		fmt.Fprintln(os.Stderr, "gen-schemas:", err)
		os.Exit(1)
	}
}

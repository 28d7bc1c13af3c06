// Command golangci-lint is golangci-lint v2 with the kube-api-linter module plugin linked
// in, so one binary serves .golangci.yml and .golangci-kal.yml. It replaces
// `golangci-lint custom`, which clones golangci-lint with git at build time; this module
// pins both through its own go.mod and go.sum. The Makefile builds it into bin/.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/golangci/golangci-lint/v2/pkg/commands"
	"github.com/golangci/golangci-lint/v2/pkg/exitcodes"

	// Registers the "kubeapilinter" module plugin.
	_ "sigs.k8s.io/kube-api-linter"
)

func main() {
	info := commands.BuildInfo{Version: "unknown", Commit: "?", Date: "(unknown)", GoVersion: "unknown"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		for _, dep := range bi.Deps {
			switch dep.Path {
			case "github.com/golangci/golangci-lint/v2":
				info.Version = dep.Version
			case "sigs.k8s.io/kube-api-linter":
				info.Commit = "kube-api-linter " + dep.Version
			}
		}
	}
	if err := commands.Execute(info); err != nil {
		_, _ = fmt.Fprintf(os.Stderr, "golangci-lint: %v\n", err)
		os.Exit(exitcodes.Failure)
	}
}

// Command olderhandler is a custom handler image as a user builds one: a handler registered
// under "older-handler" and the runtime's `run` command. runtime/contract_binary_test.go builds
// it and runs it under a spec rendered by a newer operator.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kpipe-io/kpipe/runtime"
)

func main() {
	runtime.Register("older-handler", runtime.HandlerFunc(func(context.Context, *runtime.Message) error { return nil }))
	root := &cobra.Command{Use: "olderhandler", SilenceUsage: true}
	root.AddCommand(runtime.NewCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "olderhandler:", err)
		os.Exit(1)
	}
}

// Command prepare-example fetches the inputs of profiles/examples/busybox.yaml
// (the Debian kernel and busybox) into the cache; `make example` runs it.
package main

import (
	"context"
	"fmt"
	"os"

	"keel/qemu-tests/example"
)

func main() {
	cache, err := example.CacheDir()
	if err == nil {
		err = example.Prepare(context.Background(), cache)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare-example:", err)
		os.Exit(1)
	}
	fmt.Println(cache)
}

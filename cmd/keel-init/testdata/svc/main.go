// Command svc is a stand-in service for keel-init's namespace test: a
// static binary that reports what it sees and then does one thing.
//
//	svc report          print hostname, ids, cwd, $MODE, the filesystem
//	                    types of the API mounts and whether lo is up, then
//	                    run until killed
//	svc exit N          print a line and exit with status N
//	svc signal-init SIG wait 1.5 s, send SIG (a number) to PID 1, then sleep
//	svc copy FROM TO... print each FROM's content, write it to its TO,
//	                    exit 0
//
// Built by the test (CGO_ENABLED=0); it lives in testdata so that
// `go build ./...` leaves it alone.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

var fsNames = map[int64]string{
	0x9fa0:     "proc",
	0x62656572: "sysfs",
	0x01021994: "tmpfs",
	0x1cd1:     "devpts",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: svc report | exit N | signal-init SIG")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "report":
		host, _ := os.Hostname()
		cwd, _ := os.Getwd()
		fmt.Printf("hostname=%s uid=%d gid=%d groups=%v cwd=%s MODE=%s\n",
			host, os.Getuid(), os.Getgid(), groups(), cwd, os.Getenv("MODE"))
		for _, p := range []string{"/proc", "/sys", "/dev", "/dev/pts", "/run", "/tmp"} {
			var st syscall.Statfs_t
			if err := syscall.Statfs(p, &st); err != nil {
				fmt.Printf("fs %s: %v\n", p, err)
				continue
			}
			name, ok := fsNames[st.Type]
			if !ok {
				name = fmt.Sprintf("%#x", st.Type)
			}
			fmt.Printf("fs %s=%s\n", p, name)
		}
		if lo, err := net.InterfaceByName("lo"); err == nil {
			fmt.Printf("lo up=%v\n", lo.Flags&net.FlagUp != 0)
		}
		fmt.Fprintln(os.Stderr, "report done (stderr)")
		sleepForever()
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		fmt.Printf("exiting with %d\n", n)
		os.Exit(n)
	case "copy":
		for i := 2; i+1 < len(os.Args); i += 2 {
			b, err := os.ReadFile(os.Args[i])
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			fmt.Printf("%s: %s", os.Args[i], b)
			if err := os.WriteFile(os.Args[i+1], b, 0o644); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
		}
	case "signal-init":
		n, _ := strconv.Atoi(os.Args[2])
		time.Sleep(1500 * time.Millisecond)
		fmt.Printf("sending signal %d to PID 1\n", n)
		if err := syscall.Kill(1, syscall.Signal(n)); err != nil {
			fmt.Println(err)
		}
		sleepForever()
	}
}

func groups() []int {
	g, _ := os.Getgroups()
	return g
}

// sleepForever blocks until a signal ends the process (select{} would be
// reported as a deadlock by the runtime).
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"keel/rootfs/services"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// realProcs starts services as real processes. It never waits for them:
// the reaper does, for every child, and tells the supervisor. (os/exec's
// Wait would race with it for the same pids.)
type realProcs struct {
	con *console
}

func (r *realProcs) start(svc services.Service) (int, error) {
	acct, err := resolveUser(svc.User)
	if err != nil {
		return 0, err
	}
	env := serviceEnv(svc, acct)
	argv0, err := lookPath(svc.Command[0], envValue(env, "PATH"))
	if err != nil {
		return 0, err
	}
	dir := svc.WorkingDir
	if dir == "" {
		dir = "/"
		if fi, err := os.Stat(acct.Home); err == nil && fi.IsDir() {
			dir = acct.Home
		}
	}

	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("output pipe: %w", err)
	}
	defer pw.Close() // the child has its copy; ours must go so EOF comes

	attr := &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), pw.Fd(), pw.Fd()},
		Sys: &syscall.SysProcAttr{
			// Its own session and process group, so stopping it reaches
			// everything it started.
			Setsid: true,
		},
	}
	if acct.UID != 0 || acct.GID != 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: acct.UID, Gid: acct.GID, Groups: acct.Groups}
	}
	pid, err := syscall.ForkExec(argv0, svc.Command, attr)
	if err != nil {
		pr.Close()
		return 0, fmt.Errorf("exec %s: %w", argv0, err)
	}
	go r.con.copyLines(pr, "["+svc.Name+"] ")
	return pid, nil
}

// signal signals the service's process group, or the process alone if it
// has left its group.
func (r *realProcs) signal(pid int, sig syscall.Signal) error {
	err := unix.Kill(-pid, sig)
	if errors.Is(err, unix.ESRCH) {
		err = unix.Kill(pid, sig)
	}
	return err
}

func resolveUser(name string) (account, error) {
	if name == "" {
		name = "root"
	}
	passwd, err := os.Open("/etc/passwd")
	if err != nil {
		if name == "root" {
			return account{Name: "root", Home: "/root"}, nil
		}
		return account{}, fmt.Errorf("user %s: %w", name, err)
	}
	defer passwd.Close()
	var group io.Reader // optional: no supplementary groups without it
	if g, err := os.Open("/etc/group"); err == nil {
		defer g.Close()
		group = g
	}
	a, err := lookupUser(name, passwd, group)
	if err != nil && name == "root" {
		return account{Name: "root", Home: "/root"}, nil
	}
	return a, err
}

// serviceEnv is a minimal login-like environment with the service's own
// variables on top, sorted so a service sees the same thing every boot.
func serviceEnv(svc services.Service, a account) []string {
	m := map[string]string{
		"PATH":    defaultPath,
		"HOME":    firstNonEmpty(a.Home, "/"),
		"USER":    a.Name,
		"LOGNAME": a.Name,
		"TERM":    firstNonEmpty(os.Getenv("TERM"), "linux"),
	}
	for k, v := range svc.Env {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds file in path the way a shell does: a name with a slash
// is used as is, otherwise the first executable regular file in path.
func lookPath(file, path string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in PATH %s", file, path)
}

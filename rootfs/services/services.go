// Package services is the on-disk format of the service definitions that
// keel-init's supervisor runs when an image has no other init: one JSON file
// per service in Dir (/etc/keel/services/NAME.json). keel writes them into the
// tree at build time (Write); keel-init reads them at boot (Load).
//
// A file looks like this (fields other than name and command may be left out):
//
//	{
//	  "name": "web",
//	  "command": ["/usr/bin/httpd", "-f", "-p", "80"],
//	  "restart": "always",
//	  "env": {"MODE": "production"},
//	  "user": "www",
//	  "working_dir": "/var/www",
//	  "on_exit": ""
//	}
//
// Decoding is strict: unknown fields are errors, so a newer keel's file is
// refused loudly by an older keel-init rather than half understood.
package services

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Dir is where the definitions live in the rootfs.
const Dir = "/etc/keel/services"

// Restart says when the supervisor restarts a service that exited.
type Restart string

const (
	// Always restarts after any exit.
	Always Restart = "always"
	// OnFailure restarts after a non-zero exit status or a death by signal.
	OnFailure Restart = "on-failure"
	// Never leaves the service stopped once it exits.
	Never Restart = "never"
)

// OnExit is what the whole system does once a service has exited for good:
// it exited and its restart policy says not to restart it, or its restart
// budget is spent. A test image runs its test as a service with Restart
// Never and OnExit Poweroff so the VM stops by itself.
type OnExit string

const (
	// KeepRunning leaves the system up (the default).
	KeepRunning OnExit = ""
	// Poweroff and Reboot stop every service, then power off or reboot.
	Poweroff OnExit = "poweroff"
	Reboot   OnExit = "reboot"
)

// Service is one supervised process.
type Service struct {
	// Name identifies the service in logs ("[name] ..." on the console) and
	// names its file; services start in name order.
	Name string `json:"name"`
	// Command is the argv. The first element is an absolute path or is
	// looked up in the service's PATH.
	Command []string `json:"command"`
	// Restart is the restart policy; "" means Always.
	Restart Restart `json:"restart,omitempty"`
	// Env is added to a minimal environment (PATH, HOME, USER, LOGNAME),
	// overriding it.
	Env map[string]string `json:"env,omitempty"`
	// User is the account it runs as, resolved in /etc/passwd at start;
	// "" means root.
	User string `json:"user,omitempty"`
	// WorkingDir is the directory it starts in; "" means the user's home
	// directory if it exists, else "/".
	WorkingDir string `json:"working_dir,omitempty"`
	// OnExit is what the system does once the service is gone for good.
	OnExit OnExit `json:"on_exit,omitempty"`
}

// RestartPolicy returns the effective restart policy.
func (s Service) RestartPolicy() Restart {
	if s.Restart == "" {
		return Always
	}
	return s.Restart
}

// The name becomes a file name and a console prefix, so it is kept tame.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]*$`)

var validEnv = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports the first thing wrong with s.
func (s Service) Validate() error {
	if !validName.MatchString(s.Name) || len(s.Name) > 64 {
		return fmt.Errorf("service name %q: want 1-64 of A-Z a-z 0-9 _ . @ -, not starting with a punctuation mark", s.Name)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return fmt.Errorf("service %s: command is empty", s.Name)
	}
	for _, a := range s.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("service %s: command argument %q holds a NUL byte", s.Name, a)
		}
	}
	switch s.Restart {
	case "", Always, OnFailure, Never:
	default:
		return fmt.Errorf("service %s: restart %q: want always, on-failure or never", s.Name, s.Restart)
	}
	switch s.OnExit {
	case KeepRunning, Poweroff, Reboot:
	default:
		return fmt.Errorf("service %s: on_exit %q: want poweroff, reboot or nothing", s.Name, s.OnExit)
	}
	for k, v := range s.Env {
		if !validEnv.MatchString(k) {
			return fmt.Errorf("service %s: env: %q is not a variable name", s.Name, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("service %s: env %s holds a NUL byte", s.Name, k)
		}
	}
	if s.WorkingDir != "" && !strings.HasPrefix(s.WorkingDir, "/") {
		return fmt.Errorf("service %s: working_dir %q is not absolute", s.Name, s.WorkingDir)
	}
	return nil
}

// Marshal encodes a valid service as an indented JSON document with a final
// newline. Output depends only on s (encoding/json sorts map keys).
func Marshal(s Service) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding service %s: %w", s.Name, err)
	}
	return append(b, '\n'), nil
}

// Unmarshal decodes and validates one service file. Unknown fields and
// trailing data are errors.
func Unmarshal(b []byte) (Service, error) {
	var s Service
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return Service{}, fmt.Errorf("decoding service: %w", err)
	}
	if err := d.Decode(new(json.RawMessage)); err != io.EOF {
		return Service{}, errors.New("decoding service: data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return Service{}, err
	}
	return s, nil
}

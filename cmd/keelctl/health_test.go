package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestParseShow(t *testing.T) {
	out := "Id=ssh.service\nActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n\nId=app.service\nActiveState=failed\nSubState=failed\nResult=exit-code\nNRestarts=3\n"
	got, err := parseShow(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []unitState{{"ssh.service", "active", "running", "success", "0"}, {"app.service", "failed", "failed", "exit-code", "3"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v", got)
	}
	if _, err := parseShow(strings.NewReader("garbage\n")); err == nil {
		t.Error("garbage parsed")
	}
}

func TestWatchHealth(t *testing.T) {
	st := func(id, active, result, restarts string) unitState {
		return unitState{ID: id, Active: active, Result: result, Restarts: restarts}
	}
	for _, c := range []struct {
		name  string
		polls [][]unitState // one per poll; the last repeats
		want  string        // "" for healthy
	}{
		{"up all along", [][]unitState{{st("a.service", "active", "success", "0")}}, ""},
		{"starts late", [][]unitState{{st("a.service", "activating", "success", "0")}, {st("a.service", "active", "success", "0")}}, ""},
		{"fails", [][]unitState{{st("a.service", "active", "success", "0")}, {st("a.service", "failed", "exit-code", "0")}}, "a.service failed"},
		{"restarts", [][]unitState{{st("a.service", "active", "success", "0")}, {st("a.service", "active", "success", "1")}}, "a.service restarted"},
		{"exited with an error", [][]unitState{{st("a.service", "inactive", "exit-code", "0")}}, "a.service is inactive (result exit-code)"},
		{"never started", [][]unitState{{st("a.service", "inactive", "success", "0")}}, "a.service is inactive, not running"},
		{"one of two", [][]unitState{{st("a.service", "active", "success", "0"), st("b.service", "activating", "success", "0")}}, "only 1 of 2 units up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			show := func(context.Context) ([]unitState, error) {
				p := c.polls[min(n, len(c.polls)-1)]
				n++
				return p, nil
			}
			err := watchHealth(context.Background(), show, 30*time.Millisecond, 5*time.Millisecond, t.Logf)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unhealthy: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

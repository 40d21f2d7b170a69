package postinst

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPamMatchesPamAuthUpdate sets up the PAM profiles of a Debian 12
// system (unix, systemd, capability, and mkhomedir, which is not enabled
// by default) and compares keel's /etc/pam.d/common-* and /var/lib/pam
// with what pam-auth-update wrote on that system (testdata/pam/want).
func TestPamMatchesPamAuthUpdate(t *testing.T) {
	tr := mergedUsrTree(t)
	profiles, err := filepath.Glob("testdata/pam/pam-configs/*")
	if err != nil || len(profiles) != 4 {
		t.Fatalf("profiles: %v %v", profiles, err)
	}
	for _, f := range profiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		addFile(t, tr, "/usr/share/pam-configs/"+filepath.Base(f), 0o644, string(b))
	}
	for _, typ := range pamTypes {
		addTestdata(t, tr, "libpam-runtime", "/usr/share/pam/common-"+typ)
	}
	runtime, err := readTestdata("libpam-runtime", "postinst")
	if err != nil {
		t.Fatal(err)
	}
	rep := configure(t, tr, pkg("libpam-runtime", runtime), pkg("libpam-systemd", "#!/bin/sh\nset -e\npam-auth-update --package\n"))
	for _, dir := range []struct{ tree, want string }{{"/etc/pam.d/", "etc-pam.d"}, {"/var/lib/pam/", "var-lib-pam"}} {
		files, _ := filepath.Glob(filepath.Join("testdata/pam/want", dir.want, "*"))
		if len(files) < 5 {
			t.Fatalf("no expected files in %s", dir.want)
		}
		for _, f := range files {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := dir.tree + filepath.Base(f)
			if got := fileString(t, tr, p); got != string(want) {
				t.Errorf("%s differs from pam-auth-update's:\n%s", p, lineDiff(got, string(want)))
			}
		}
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "pam-auth-update") {
			t.Errorf("pam-auth-update reported as not run: %s", w)
		}
	}
}

func TestPamKeepsExistingFiles(t *testing.T) {
	tr := mergedUsrTree(t)
	addTestdata(t, tr, "libpam-runtime", "/usr/share/pam-configs/unix")
	for _, typ := range pamTypes {
		addTestdata(t, tr, "libpam-runtime", "/usr/share/pam/common-"+typ)
	}
	addFile(t, tr, "/etc/pam.d/common-auth", 0o644, "auth required pam_permit.so\n")
	rep := configure(t, tr, pkg("libpam-runtime", "pam-auth-update --package\n"))
	if got := fileString(t, tr, "/etc/pam.d/common-auth"); got != "auth required pam_permit.so\n" {
		t.Errorf("common-auth replaced:\n%s", got)
	}
	if got := fileString(t, tr, "/etc/pam.d/common-account"); !strings.Contains(got, "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so \n") {
		t.Errorf("common-account:\n%s", got)
	}
	checkWarnings(t, rep, "pam-auth-update: /etc/pam.d/common-auth exists; left as it is")
}

func TestPamProfileParsing(t *testing.T) {
	p := parsePamProfile("x", "Name: X\nDefault: yes\nPriority: 5\nConflicts: a, b\nAuth-Type: Primary\nAuth-Final:\n\t[success=end default=ignore]\tpam_x.so\n\tsecond line\n")
	if p.fields["Auth"] != "[success=end default=ignore]\tpam_x.so\nsecond line" || p.priority != 5 || !p.conflicts["b"] {
		t.Errorf("parsed %+v", p)
	}
	if p.fields["Session-noninteractive-Type"] != "" {
		t.Error("noninteractive session without a session")
	}
	if parsePamProfile("tally", "Name: t\nAuth:\n\tpam_tally.so\n") != nil {
		t.Error("a pam_tally profile was not disabled")
	}
}

package postinst

import (
	"strings"
	"testing"

	"keel/rootfs"
)

const (
	masterPasswd = "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	masterGroup  = "root:*:0:\naudio:*:29:\nshadow:*:42:\nusers:*:100:\nnogroup:*:65534:\n"
)

// basePasswd is a base-passwd package and its master files in a tree.
func basePasswd(t *testing.T, tr *rootfs.Tree) *Package {
	addFile(t, tr, "/usr/share/base-passwd/passwd.master", 0o644, masterPasswd)
	addFile(t, tr, "/usr/share/base-passwd/group.master", 0o644, masterGroup)
	return pkg("base-passwd", "")
}

func TestAccounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup adds files to the tree and returns the packages.
		setup        func(t *testing.T, tr *rootfs.Tree) []*Package
		passwd       string // lines expected after the seeded ones, in order
		passwdHas    []string
		group        string
		groupLacks   []string
		shadowHas    []string
		gshadowHas   []string
		warningsHave []string
	}{
		{
			name: "sysusers: groups first, ids from 999 down, a user's group shares its number",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				addFile(t, tr, "/usr/lib/sysusers.d/a.conf", 0o644, "u user-a - \"User A\"\ng grp-a -\n")
				addFile(t, tr, "/usr/lib/sysusers.d/b.conf", 0o644, "u user-b 500 - /var/lib/b /bin/sh\nu user-c 600:grp-a\nm user-b audio\nu user-d -:grp-a\nu bad:name -\n")
				return []*Package{basePasswd(t, tr)}
			},
			passwd:     "user-a:x:998:998:User A:/:/usr/sbin/nologin\nuser-b:x:500:500::/var/lib/b:/bin/sh\nuser-c:x:600:999::/:/usr/sbin/nologin\n",
			group:      "audio:x:29:user-b\n" + "grp-a:x:999:\nuser-a:x:998:\nuser-b:x:500:\n",
			shadowHas:  []string{"root:*:19675:0:99999:7:::\n", "user-a:!*:19675::::::\n"},
			gshadowHas: []string{"root:*::\n", "grp-a:!*::\n", "audio:*::user-b\n"},
			// As systemd-sysusers, which cannot parse a uid of "-" either.
			warningsHave: []string{`b.conf:4: bad id "-"; line ignored`, `b.conf:5: "bad:name": a field may not contain ':'`},
		},
		{
			name: "sysusers: /etc hides /usr/lib, /dev/null masks, r limits the range",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				addFile(t, tr, "/usr/lib/sysusers.d/a.conf", 0o644, "u vendor -\n")
				addFile(t, tr, "/etc/sysusers.d/a.conf", 0o644, "u admin -\n")
				addFile(t, tr, "/usr/lib/sysusers.d/b.conf", 0o644, "u masked -\n")
				addLink(t, tr, "/etc/sysusers.d/b.conf", "/dev/null")
				addFile(t, tr, "/usr/lib/sysusers.d/c.conf", 0o644, "r - 300-310\n")
				return []*Package{basePasswd(t, tr)}
			},
			passwd: "admin:x:310:310::/:/usr/sbin/nologin\n",
		},
		{
			name: "sysusers: uid:gid naming an existing group makes no group",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				addTestdata(t, tr, "systemd", "/usr/lib/sysusers.d/basic.conf")
				return []*Package{basePasswd(t, tr)}
			},
			// basic.conf's users and groups that base-passwd's masters (cut
			// down here) lack are made; "u sync 4:65534" makes no group sync.
			passwdHas:  []string{"\nsync:x:4:65534::/bin:/bin/sync\n", "\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n"},
			groupLacks: []string{"\nsync:", "\n_apt:"},
		},
		{
			name: "adduser and addgroup: system ids from 100 up",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				return []*Package{basePasswd(t, tr), pkg("svc", `#!/bin/sh
set -e
adduser --quiet --system --no-create-home --home /run/sshd --shell /usr/sbin/nologin sshd
adduser --system --group --home /nonexistent --no-create-home --disabled-password messagebus
addgroup --quiet --system kvm
adduser --system --ingroup kvm --uid 150 --gecos "Emulator" qemu
adduser --system sshd
adduser qemu audio
addgroup --system --gid 200 fixed
`)}
			},
			passwd:     "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nmessagebus:x:101:101::/nonexistent:/usr/sbin/nologin\nqemu:x:150:102:Emulator:/nonexistent:/usr/sbin/nologin\n",
			group:      "audio:x:29:qemu\n" + "messagebus:x:101:\nkvm:x:102:\nfixed:x:200:\n",
			shadowHas:  []string{"sshd:!:19675::::::\n"},
			gshadowHas: []string{"kvm:!::\n"},
		},
		{
			name: "useradd -r and groupadd -r: highest free id from 999 down",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				return []*Package{basePasswd(t, tr), pkg("svc", `useradd -r -M -d /var/lib/svc -s /usr/sbin/nologin -c "Service" svc
groupadd -r svcgrp
groupadd -g 42 shadow || true
useradd --system -g users -G audio helper
usermod -a -G svcgrp helper
gpasswd -a svc audio
`)}
			},
			passwd: "svc:x:999:999:Service:/var/lib/svc:/usr/sbin/nologin\nhelper:x:998:100::/home/helper:/bin/sh\n",
			group:  "audio:x:29:helper,svc\n" + "svc:x:999:\nsvcgrp:x:998:helper\n",
		},
		{
			name: "arguments keel cannot know are reported",
			setup: func(t *testing.T, tr *rootfs.Tree) []*Package {
				return []*Package{basePasswd(t, tr), pkg("svc", "adduser --system \"$(cat /etc/name)\"\nadduser --frobnicate x\nadduser normaluser\n")}
			},
			warningsHave: []string{
				"adduser --system ?: arguments not known at build time",
				"adduser --frobnicate x: option --frobnicate not supported",
				"adduser normaluser: creating a non-system user is not supported",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mergedUsrTree(t)
			rep := configure(t, tr, tc.setup(t, tr)...)
			passwd := fileString(t, tr, "/etc/passwd")
			if !strings.HasPrefix(passwd, "root:x:0:0:root:/root:/bin/bash\n") {
				t.Errorf("passwd does not start with root:\n%s", passwd)
			}
			for _, s := range tc.passwdHas {
				if !strings.Contains(passwd, s) {
					t.Errorf("passwd lacks %q:\n%s", s, passwd)
				}
			}
			if added := strings.TrimPrefix(passwd, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"); tc.passwdHas == nil && added != tc.passwd {
				t.Errorf("passwd added\n%s\nwant\n%s", added, tc.passwd)
			}
			group := fileString(t, tr, "/etc/group")
			for _, s := range tc.groupLacks {
				if strings.Contains(group, s) {
					t.Errorf("group has %q:\n%s", s, group)
				}
			}
			if tc.group != "" {
				members, created, _ := strings.Cut(tc.group, "\n")
				if !strings.Contains(group, members+"\n") {
					t.Errorf("group lacks %q:\n%s", members, group)
				}
				if !strings.HasSuffix(group, created) {
					t.Errorf("group ends\n%s\nwant\n%s", group, created)
				}
			}
			shadow, gshadow := fileString(t, tr, "/etc/shadow"), fileString(t, tr, "/etc/gshadow")
			for _, s := range tc.shadowHas {
				if !strings.Contains(shadow, s) {
					t.Errorf("shadow lacks %q:\n%s", s, shadow)
				}
			}
			for _, s := range tc.gshadowHas {
				if !strings.Contains(gshadow, s) {
					t.Errorf("gshadow lacks %q:\n%s", s, gshadow)
				}
			}
			// Every account has its shadow line, in the same order.
			var users, shadowUsers []string
			for _, l := range strings.Split(strings.TrimSpace(passwd), "\n") {
				users = append(users, l[:strings.IndexByte(l, ':')])
			}
			for _, l := range strings.Split(strings.TrimSpace(shadow), "\n") {
				shadowUsers = append(shadowUsers, l[:strings.IndexByte(l, ':')])
			}
			if strings.Join(users, " ") != strings.Join(shadowUsers, " ") {
				t.Errorf("shadow users %v, passwd users %v", shadowUsers, users)
			}
			warnings := strings.Join(rep.Warnings, "\n")
			for _, w := range tc.warningsHave {
				if !strings.Contains(warnings, w) {
					t.Errorf("warnings lack %q:\n%s", w, warnings)
				}
			}
		})
	}
}

func TestAccountFileModes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		group     string
		mode, gid uint32
	}{
		{"shadow group", masterGroup, 0o640, 42},
		{"no shadow group", "root:*:0:\n", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := mergedUsrTree(t)
			addFile(t, tr, "/usr/share/base-passwd/passwd.master", 0o644, masterPasswd)
			addFile(t, tr, "/usr/share/base-passwd/group.master", 0o644, tc.group)
			configure(t, tr, pkg("base-passwd", ""))
			for p, want := range map[string][2]uint32{
				"/etc/passwd": {0o644, 0}, "/etc/group": {0o644, 0},
				"/etc/shadow": {tc.mode, tc.gid}, "/etc/gshadow": {tc.mode, tc.gid},
			} {
				e, ok := tr.Get(p)
				if !ok || e.Mode != want[0] || e.GID != want[1] || e.UID != 0 || e.Mtime != testEpoch {
					t.Errorf("%s: %+v, want mode %o gid %d", p, e, want[0], want[1])
				}
			}
		})
	}
}

func TestAccountsKeepExistingFiles(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n")
	addFile(t, tr, "/etc/shadow", 0o640, "root:$6$hash:19000:0:99999:7:::\n")
	addFile(t, tr, "/etc/group", 0o644, "root:x:0:\n")
	configure(t, tr, basePasswd(t, tr), pkg("svc", "adduser --system svc\n"))
	if got := fileString(t, tr, "/etc/passwd"); got != "root:x:0:0:root:/root:/bin/sh\nsvc:x:100:65534::/nonexistent:/usr/sbin/nologin\n" {
		t.Errorf("passwd:\n%s", got)
	}
	if got := fileString(t, tr, "/etc/shadow"); !strings.HasPrefix(got, "root:$6$hash:19000:0:99999:7:::\n") {
		t.Errorf("shadow lost root's line:\n%s", got)
	}
}

func TestNoAccountsNoFiles(t *testing.T) {
	tr := mergedUsrTree(t)
	configure(t, tr, pkg("hello", "echo hi\n"))
	for _, p := range []string{"/etc/passwd", "/etc/shadow"} {
		if _, ok := tr.Get(p); ok {
			t.Errorf("%s written for a tree without accounts", p)
		}
	}
}

func TestLastChangeNeverDayZero(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/usr/share/base-passwd/passwd.master", 0o644, masterPasswd)
	addFile(t, tr, "/usr/share/base-passwd/group.master", 0o644, masterGroup)
	if _, err := Configure(t.Context(), tr, []*Package{pkg("base-passwd", "")}, Options{Epoch: 0}); err != nil {
		t.Fatal(err)
	}
	// Day 0 would make pam_unix demand a new password at once.
	if got := fileString(t, tr, "/etc/shadow"); !strings.HasPrefix(got, "root:*::0:99999:7:::\n") {
		t.Errorf("shadow:\n%s", got)
	}
}

package postinst

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"keel/rootfs"
)

// record evaluates script as pkg's postinst (or preinst) and returns its
// commands as "always|maybe argv...", "?" for unknown words; commands of
// command substitutions are prefixed with "$(".
func record(t *testing.T, tr *rootfs.Tree, scriptName, script string) []string {
	t.Helper()
	if tr == nil {
		tr = mergedUsrTree(t)
	}
	invs, _, err := evaluate(tr, &Package{Name: "foo", Architecture: "amd64"}, scriptName, script)
	if err != nil {
		t.Fatalf("evaluate: %v", err)
	}
	var out []string
	for _, inv := range invs {
		s := inv.state.String() + " " + inv.text()
		if inv.inSubst {
			s = "$( " + s
		}
		out = append(out, s)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	withFile := func(p string, body string) *rootfs.Tree {
		tr := mergedUsrTree(t)
		if _, err := tr.MkdirAllTime(p[:strings.LastIndexByte(p, '/')], 0o755, 0); err != nil {
			t.Fatal(err)
		}
		if err := tr.Add(p, rootfs.NewFile(0o644, []byte(body))); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	for _, tc := range []struct {
		name   string
		script string
		tree   *rootfs.Tree
		pre    bool // preinst
		want   []string
	}{
		{
			name: "dh_installalternatives block with continuations",
			script: `#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ]; then
        update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \
            --slave /usr/bin/nawk nawk /usr/bin/mawk
fi
`,
			want: []string{"always [ configure = configure ]", "always update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 --slave /usr/bin/nawk nawk /usr/bin/mawk"},
		},
		{
			name:   "upgrade-only branches are not entered",
			script: `if [ -n "$2" ]; then systemctl restart x; fi; if dpkg --compare-versions "$2" lt-nl 1.0; then rm -f /etc/old; fi`,
			want:   []string{"always [ -n  ]", "always dpkg --compare-versions  lt-nl 1.0"},
		},
		{
			name:   "new-install conditions",
			script: `if [ -z "$2" ]; then systemctl enable a.service || true; fi; if dpkg --compare-versions "$2" lt "245.4-4~"; then systemctl enable b.service; fi`,
			want:   []string{"always [ -z  ]", "always systemctl enable a.service", "always dpkg --compare-versions  lt 245.4-4~", "always systemctl enable b.service"},
		},
		{
			name:   "trigger branch and exit",
			script: "if [ \"$1\" = triggered ]; then ldconfig; exit 0; fi\necho configured\nexit 0\necho never",
			want:   []string{"always [ configure = triggered ]", "always echo configured"},
		},
		{
			name:   "case",
			script: "case \"$1\" in\n  configure)\n    addgroup --quiet --system kvm\n    ;;\n  (triggered) update_hwdb ;;\n  *) echo other ;;\nesac",
			want:   []string{"always addgroup --quiet --system kvm"},
		},
		{
			name:   "functions get their arguments",
			script: "in_sysroot() {\n if [ -z \"${DPKG_ROOT:-}\" ]; then\n  \"$@\"\n else\n  chroot \"$DPKG_ROOT\" \"$@\"\n fi\n}\nin_sysroot adduser --system --group \"messagebus\"",
			want:   []string{"always [ -z  ]", "always adduser --system --group messagebus"},
		},
		{
			name:   "DPKG_ROOT expansions disappear",
			script: `systemctl ${DPKG_ROOT:+--root="$DPKG_ROOT"} enable getty@tty1.service; mkdir -p "$DPKG_ROOT/var/log/journal"`,
			want:   []string{"always systemctl enable getty@tty1.service", "always mkdir -p /var/log/journal"},
		},
		{
			name: "debian-installed blocks are not entered, was-enabled ones are",
			script: `if deb-systemd-helper --quiet was-enabled 'ssh.service'; then deb-systemd-helper enable 'ssh.service' >/dev/null || true; fi
if deb-systemd-helper debian-installed 'ssh.socket'; then deb-systemd-helper enable 'ssh.socket'; fi`,
			want: []string{"always deb-systemd-helper --quiet was-enabled ssh.service", "always deb-systemd-helper enable ssh.service", "always deb-systemd-helper debian-installed ssh.socket"},
		},
		{
			name:   "no systemd running at build time",
			script: `[ -d /run/systemd/system ] && systemctl daemon-reload; if [ -d /run/systemd/system ]; then deb-systemd-invoke start x; fi`,
			want:   []string{"always [ -d /run/systemd/system ]", "always [ -d /run/systemd/system ]"},
		},
		{
			name:   "command output makes a condition unknown",
			script: `if [ -x "$(command -v systemd-tmpfiles)" ]; then systemd-tmpfiles --create x.conf >/dev/null || true; fi`,
			want:   []string{"$( always command -v systemd-tmpfiles", "always [ -x ? ]", "maybe systemd-tmpfiles --create x.conf", "maybe true"},
		},
		{
			name:   "literal variables are resolved, conditional ones are not",
			script: "PRIORITY=50\nupdate-alternatives --install /a a /b $PRIORITY\nif grep -q x /f; then P2=1; fi\nupdate-alternatives --install /c c /d $P2",
			want:   []string{"always update-alternatives --install /a a /b 50", "always grep -q x /f", "always update-alternatives --install /c c /d ?"},
		},
		{
			name:   "here-documents are data",
			script: "cat > /etc/x <<'EOF'\nadduser evil\nEOF\ncat <<-EOF\n\tuserdel root\n\tEOF\necho after",
			want:   []string{"always cat", "always cat", "always echo after"},
		},
		{
			name:   "a conditional exit makes the rest conditional",
			script: "if grep -q x /f; then exit 0; fi\nadduser --system a",
			want:   []string{"always grep -q x /f", "maybe adduser --system a"},
		},
		{
			name:   "negation",
			script: "if ! getent passwd sshd >/dev/null; then adduser --system sshd; fi",
			want:   []string{"always getent passwd sshd", "maybe adduser --system sshd"},
		},
		{
			name:   "file tests read the tree",
			script: `if [ ! -e "$DPKG_ROOT/etc/subuid" ]; then touch "$DPKG_ROOT/etc/subuid"; fi; if [ -f /etc/present ]; then echo yes; fi`,
			tree:   withFile("/etc/present", "x"),
			want:   []string{"always [ ! -e /etc/subuid ]", "always touch /etc/subuid", "always [ -f /etc/present ]", "always echo yes"},
		},
		{
			name:   "loops over known words",
			script: "for f in a b; do echo $f; done\nfor trigger in $@; do echo maybe; done",
			want:   []string{"always echo a", "always echo b", "always echo maybe"}, // "$2" is empty: one word
		},
		{
			name:   "libraries from the tree are read",
			script: ". /usr/share/lib.sh\nmk /etc/x",
			tree:   withFile("/usr/share/lib.sh", "mk() { mkdir -p \"$1\"; }\n"),
			want:   []string{"always mkdir -p /etc/x"},
		},
		{
			name:   "debconf's confmodule is not read",
			script: ". /usr/share/debconf/confmodule\ndb_get foo/bar\necho \"$RET\"",
			want:   []string{"always . /usr/share/debconf/confmodule", "always db_get foo/bar", "always echo ?"},
		},
		{
			name:   "parameter expansions",
			script: "line='/bin/sh # comment'\necho \"${line%%#*}\" ${#line} ${unset:-dflt} ${2:-empty} \"${1#con}\"",
			want:   []string{"always echo /bin/sh  17 ? empty figure"}, // a variable the script never set may come from the environment
		},
		{
			name:   "set -- and shift",
			script: "set -- a b c\nshift\necho \"$@\" $#",
			want:   []string{"always echo b c 2"},
		},
		{
			name:   "preinst runs with install",
			script: `if [ "$1" = install ] && [ -n "$2" ]; then chmod +x /etc/init.d/x; fi; [ "$1" = install ] && echo fresh`,
			pre:    true,
			want:   []string{"always [ install = install ]", "always [ -n  ]", "always [ install = install ]", "always echo fresh"},
		},
		{
			name:   "pipelines, subshells and loops reading input",
			script: "echo a | while read ca; do echo \"$ca\"; done\n( cd /tmp && ls )\nwhile read line; do echo \"$line\"; done < /etc/x",
			want:   []string{"always echo a", "maybe echo ?", "always cd /tmp", "maybe ls", "maybe echo ?"},
		},
		{
			name:   "backquotes, arithmetic and nested substitutions",
			script: "x=`uname -s`\ny=$((1 + 2))\nz=$(basename $(dirname /a/b/c))\necho $x $y",
			want:   []string{"$( always uname -s", "$( always dirname /a/b/c", "$( always basename ?", "always echo ? ?"},
		},
		{
			name:   "exit status of handled commands",
			script: "cp -pZ /a /b || cp -p /a /b\nldconfig || ldconfig --verbose",
			want:   []string{"always cp -pZ /a /b", "always ldconfig", "maybe ldconfig --verbose"},
		},
		{
			name:   "local variables",
			script: "f() { local v=inner; echo $v; }\nv=outer\nf\necho $v",
			want:   []string{"always echo inner", "always echo outer"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := "postinst"
			if tc.pre {
				script = "preinst"
			}
			got := record(t, tc.tree, script, tc.script)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestEvaluateUmask(t *testing.T) {
	invs, _, err := evaluate(mergedUsrTree(t), &Package{Name: "foo"}, "postinst", "umask 066\ntouch /etc/security/opasswd\numask 022\ntouch /etc/x")
	if err != nil {
		t.Fatal(err)
	}
	var masks []int
	for _, inv := range invs {
		masks = append(masks, inv.umask)
	}
	if !reflect.DeepEqual(masks, []int{0o066, 0o022}) {
		t.Errorf("umasks %o", masks)
	}
}

func TestEvaluateHostile(t *testing.T) {
	for name, script := range map[string]string{
		"recursion":         "f() { f; }\nf\necho done",
		"mutual recursion":  "a() { b; }\nb() { a; }\na",
		"deep substitution": strings.Repeat("$(", 50) + "x" + strings.Repeat(")", 50),
		"long loop":         "while :; do :; done",
		"exponential calls": exponentialCalls(),
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := evaluate(mergedUsrTree(t), &Package{Name: "foo"}, "postinst", script); err != nil {
				t.Logf("refused: %v", err)
			}
		})
	}
	for name, script := range map[string]string{
		"unterminated quote":    "echo 'abc",
		"unterminated here-doc": "cat <<EOF\nabc\n",
		"unbalanced if":         "if true; then echo x",
		"stray fi":              "echo x; fi",
		"unterminated $(":       "echo $(ls",
		"deep nesting":          strings.Repeat("if true; then ", 1000) + "echo x" + strings.Repeat("; fi", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := evaluate(mergedUsrTree(t), &Package{Name: "foo"}, "postinst", script); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, op, b string
		want     tri
	}{
		{"", "lt", "1.0", stTrue},
		{"", "lt-nl", "1.0", stFalse},
		{"", "le-nl", "1.0", stFalse},
		{"", "gt-nl", "1.0", stTrue},
		{"", "ge", "1.0", stFalse},
		{"", "eq", "", stTrue},
		{"1:9.1p1-1", "lt-nl", "1:9.1p1-1~", stFalse},
		{"1.0~rc1", "lt", "1.0", stTrue},
		{"2:1.0", "gt", "1:9.9", stTrue},
		{"1.0", "ne", "1.0", stFalse},
		{"1.0", "bogus", "1.0", stUnknown},
	} {
		if got := compareVersions(tc.a, tc.op, tc.b); got != tc.want {
			t.Errorf("%q %s %q = %v, want %v", tc.a, tc.op, tc.b, got, tc.want)
		}
	}
}

func TestFnmatch(t *testing.T) {
	for _, tc := range []struct {
		pat, s string
		want   bool
	}{
		{"*", "a/b", true}, {"configure", "configure", true}, {"con*", "configure", true},
		{"*\"#x#\"*", "#a#x#", false}, {"*#x#*", "#a#x#", true}, {"[abc]x", "bx", true},
		{"[!abc]x", "bx", false}, {"a?c", "abc", true}, {"a\\*c", "a*c", true}, {"a\\*c", "abc", false},
		{"[a-z]*", "q1", true},
	} {
		if got := fnmatch(tc.pat, tc.s); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v", tc.pat, tc.s, got)
		}
	}
}

// exponentialCalls defines f1..f40, each calling the previous one twice.
func exponentialCalls() string {
	var b strings.Builder
	b.WriteString("f0() { echo; }\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "f%d() { f%d; f%d; }\n", i, i-1, i-1)
	}
	b.WriteString("f40\n")
	return b.String()
}

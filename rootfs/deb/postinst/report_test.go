package postinst

import (
	"reflect"
	"testing"
)

func TestReport(t *testing.T) {
	tr := mergedUsrTree(t)
	addFile(t, tr, "/usr/share/debconf/confmodule", 0o644, "# debconf\n")
	a := pkg("a", `#!/bin/sh
set -e
. /usr/share/debconf/confmodule
db_get a/question
ucf --three-way /tmp/x /etc/a.conf
ucfr a /etc/a.conf
ucf --three-way /tmp/y /etc/b.conf
invoke-rc.d a start || exit 1
deb-systemd-invoke start a.service
systemctl --system daemon-reload >/dev/null || true
dpkg-maintscript-helper rm_conffile /etc/old 1.0 -- "$@"
echo "done"
sed -i 's/x/y/' /etc/a.conf
sed -e 's/x/y/' /etc/a.conf
if grep -q x /etc/a.conf; then frobnicate --now; fi
ldconfig
$HOOK --run
`)
	a.Scripts["triggers"] = "interest /usr/lib/a\n"
	b := pkg("b", "#!/usr/bin/perl\nprint 1;\n")
	c := pkg("c", "if true; then echo unbalanced\n")
	d := pkg("d", "db_input high d/q\nldconfig\n")
	rep := configure(t, tr, a, b, c, d)
	want := []string{
		"postinst of b: a perl script: not run",
		"postinst of c: not understood (line 2: expected \"fi\", found end of script): not run",
		"postinst of a: not run: ucf, ucfr, sed, frobnicate (conditional), a command named by a variable",
		"not run, not needed in an image: debconf (a, d); ldconfig (a, d); dpkg triggers of a",
	}
	if !reflect.DeepEqual(rep.Warnings, want) {
		t.Errorf("warnings\n%q\nwant\n%q", rep.Warnings, want)
	}
}

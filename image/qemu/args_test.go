package qemu

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		want  []string // substrings of the joined command line, in order
		avoid []string
	}{
		{
			name: "defaults",
			cfg:  Config{Disk: "disk.img"},
			want: []string{
				"-machine q35 -accel tcg -cpu max -m 1024 -smp 1 -display none -serial stdio -monitor none -no-reboot -nic none",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=CODE.fd",
				"-drive if=pflash,format=raw,unit=1,file=vars.fd",
				"-drive if=virtio,format=raw,file=disk.img",
			},
			avoid: []string{"-fw_cfg", "smm", "secure"},
		},
		{
			name:  "restricted user network, forwards from loopback only",
			cfg:   Config{Network: true, Forwards: []Forward{{2222, 22}, {8080, 80}}},
			want:  []string{"-nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80"},
			avoid: []string{"-nic none"},
		},
		{
			name:  "the guest reaches one host loopback port",
			cfg:   Config{Network: true, GuestForwards: []GuestForward{{"10.0.2.100:5000", 41234}}},
			want:  []string{"-nic user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:nc 127.0.0.1 41234"},
			avoid: []string{"hostfwd"},
		},
		{
			name:  "no disk",
			cfg:   Config{MemoryMiB: 256, CPUs: 2},
			want:  []string{"-m 256 -smp 2"},
			avoid: []string{"if=virtio"},
		},
		{
			name: "extra disks after the boot disk",
			cfg:  Config{Disk: "a.img", ExtraDisks: []string{"b.img", "c,d.img"}},
			want: []string{"file=a.img", "file=b.img", "file=c,,d.img"},
		},
		{
			name:  "a qcow2 boot disk, raw extra disks",
			cfg:   Config{Disk: "a.qcow2", DiskFormat: "qcow2", ExtraDisks: []string{"b.img"}},
			want:  []string{"-drive if=virtio,format=qcow2,file=a.qcow2", "-drive if=virtio,format=raw,file=b.img"},
			avoid: []string{"format=raw,file=a.qcow2", "format=qcow2,file=b.img"},
		},
		{
			name: "vmdk and vhdx boot disks",
			cfg:  Config{Disk: "a.vmdk", DiskFormat: "vmdk", ExtraDisks: []string{"b.vhdx"}},
			want: []string{"-drive if=virtio,format=vmdk,file=a.vmdk", "-drive if=virtio,format=raw,file=b.vhdx"},
		},
		{
			name: "fw_cfg sorted, opt/ added once",
			cfg:  Config{FwCfg: map[string]string{"z.keel/x": "/x", "opt/a.keel/y": "/y"}},
			want: []string{"-fw_cfg name=opt/a.keel/y,file=/y", "-fw_cfg name=opt/z.keel/x,file=/x"},
		},
		{
			name: "Secure Boot: SMM, and the variable store writable from SMM only",
			cfg:  Config{Disk: "d", SecureBoot: true},
			want: []string{"-machine q35,smm=on", "unit=1,file=vars.fd", "-global driver=cfi.pflash01,property=secure,value=on", "file=d"},
		},
		{
			name: "aarch64: virt, a cortex-a57, the same firmware and disk drives",
			cfg:  Config{Arch: "aarch64", Disk: "disk.img"},
			want: []string{
				"-machine virt -accel tcg -cpu cortex-a57 -m 1024 -smp 1 -display none -serial stdio -monitor none -no-reboot -nic none",
				"-drive if=pflash,format=raw,unit=0,readonly=on,file=CODE.fd",
				"-drive if=pflash,format=raw,unit=1,file=vars.fd",
				"-drive if=virtio,format=raw,file=disk.img",
			},
			avoid: []string{"q35", "smm", "secure"},
		},
		{
			name:  "BIOS on x86_64: QEMU's own SeaBIOS, no pflash",
			cfg:   Config{Disk: "d", BIOS: true},
			want:  []string{"-machine q35 ", "-nic none -drive if=virtio,format=raw,file=d"},
			avoid: []string{"pflash", "-bios"},
		},
		{
			name:  "BIOS on aarch64: U-Boot",
			cfg:   Config{Arch: "aarch64", Disk: "d", BIOS: true},
			want:  []string{"-machine virt ", "-bios " + UBootARM64, "-drive if=virtio,format=raw,file=d"},
			avoid: []string{"pflash"},
		},
		{
			name: "extra args last",
			cfg:  Config{Disk: "d", ExtraArgs: []string{"-d", "guest_errors"}},
			want: []string{"file=d -d guest_errors"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(args(&tt.cfg, "tcg", "CODE.fd", "vars.fd"), " ")
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("command line lacks %q (in order):\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			for _, a := range tt.avoid {
				if strings.Contains(got, a) {
					t.Errorf("command line has %q:\n%s", a, got)
				}
			}
		})
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"qemu", "-drive", "file=/a b/it's.img", "", "-m", "1024"})
	want := `qemu -drive 'file=/a b/it'\''s.img' '' -m 1024`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestResolveAccel(t *testing.T) {
	tests := []struct {
		accel, env, want string
		wantErr          bool
	}{
		{accel: "tcg", env: "kvm", want: "tcg"},
		{accel: "kvm", env: "tcg", want: "kvm"},
		{accel: "auto", env: "tcg", want: "tcg"},
		{accel: "", env: "kvm", want: "kvm"},
		{accel: "hvf", wantErr: true},
		{accel: "auto", env: "xen", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.accel+"/"+tt.env, func(t *testing.T) {
			t.Setenv(AccelEnv, tt.env)
			got, err := ResolveAccel(context.Background(), tt.accel)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ResolveAccel(%q) with %s=%q = %q, %v; want %q (error: %v)",
					tt.accel, AccelEnv, tt.env, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFirmware(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip("qemu-system-x86_64 not installed: apt-get install qemu-system-x86 ovmf")
	}
	x86 := machines["x86_64"]
	code, vars, err := firmware(x86, "", "")
	if err != nil || !strings.Contains(code, "CODE") || !strings.Contains(vars, "VARS") {
		t.Fatalf("firmware() = %q, %q, %v", code, vars, err)
	}
	// The variable store is derived from the code's name when not given.
	if _, v, err := firmware(x86, code, ""); err != nil || v != vars {
		t.Errorf("firmware(%q, \"\") = %q, %v; want %q", code, v, err, vars)
	}
	if _, _, err := firmware(x86, t.TempDir()+"/OVMF_CODE.fd", ""); err == nil {
		t.Error("firmware accepted a missing file")
	}
}

// TestFirmwareAarch64: the qemu-efi-aarch64 package's pair, both 64 MiB
// as the virt machine's pflash needs.
func TestFirmwareAarch64(t *testing.T) {
	if err := AvailableFor("aarch64"); err != nil {
		t.Skipf("%v", err)
	}
	code, vars, err := firmware(machines["aarch64"], "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{code, vars} {
		if fi, err := os.Stat(f); err != nil || fi.Size() != 64<<20 {
			t.Errorf("%s: want a 64 MiB image (%v)", f, err)
		}
	}
}

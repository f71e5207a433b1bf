package scale

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// daemonTemplate is our bagpipe-bgp built from this module, or the command
// line in BAGPIPE_SCALE_DAEMON (to smoke-test another daemon).
func daemonTemplate(t *testing.T) string {
	if d := os.Getenv("BAGPIPE_SCALE_DAEMON"); d != "" {
		return d
	}
	return filepath.Join(testenv.BuildBinaries(t), "bagpipe-bgp") + " --config-file {conf}"
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("bagpipe-scale tests create network namespaces: run them as root")
	}
}

// roundTrip writes r as JSON and reads it back, as the report does.
func roundTrip(t *testing.T, r *Result) *Result {
	t.Helper()
	p := filepath.Join(t.TempDir(), r.Scenario+".json")
	if err := r.WriteJSON(p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadResult(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Error != "" {
		t.Fatalf("%s (%s driver) failed: %s", r.Scenario, r.Driver, back.Error)
	}
	var out bytes.Buffer
	back.Table(&out)
	t.Logf("\n%s", out.String())
	return back
}

// TestScenariosSmoke runs every scenario at small scale against our daemon
// with both E-VPN drivers and checks the results are complete and sane
// (counts, not speed).
func TestScenariosSmoke(t *testing.T) {
	needRoot(t)
	tmpl := daemonTemplate(t)
	for _, driver := range []string{"dummy", "linux"} {
		t.Run(driver, func(t *testing.T) {
			o := Options{Spec: DaemonSpec{Template: tmpl, Driver: driver, Dir: t.TempDir()},
				Label: "test", Timeout: 2 * time.Minute, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			ctx := context.Background()
			kernel := driver == "linux"

			for _, pack := range []bool{false, true} {
				r := roundTrip(t, Ingest(ctx, o, IngestParams{Routes: 200, Instances: 4, Pack: pack}))
				i := r.Ingest
				if i == nil || i.Routes != 200 || i.Kernel != kernel {
					t.Fatalf("ingest pack=%v: result %+v", pack, i)
				}
				if pack && i.Messages >= 200 || !pack && i.Messages != 200 {
					t.Errorf("ingest pack=%v: %d UPDATEs for 200 routes", pack, i.Messages)
				}
				if i.Advertise.RIBCount != 200 || i.Withdraw.RIBCount != 0 {
					t.Errorf("ingest pack=%v: RIB counts %d after advertise, %d after withdraw; want 200, 0", pack, i.Advertise.RIBCount, i.Withdraw.RIBCount)
				}
				if kernel && (i.Advertise.KernelCount != 200 || i.Withdraw.KernelCount != 0 || i.Advertise.KernelSeconds <= 0) {
					t.Errorf("ingest pack=%v: kernel %d entries in %f s, %d after withdraw; want 200, >0, 0", pack, i.Advertise.KernelCount, i.Advertise.KernelSeconds, i.Withdraw.KernelCount)
				}
				if i.Advertise.RIBSeconds <= 0 || i.Advertise.RIBRate <= 0 || i.IdleRSSBytes <= 0 || i.Advertise.PeakRSSBytes < i.IdleRSSBytes {
					t.Errorf("ingest pack=%v: implausible figures %+v", pack, i)
				}
			}

			// VPNv4 into VRFs: with the linux driver the kernel count is
			// the routes of the VRF tables.
			r := roundTrip(t, Ingest(ctx, o, IngestParams{Routes: 200, Instances: 4, Family: FamilyVPNv4}))
			if i := r.Ingest; i == nil || i.Family != FamilyVPNv4 || i.Routes != 200 || i.Kernel != kernel || i.Messages != 200 {
				t.Fatalf("ingest vpnv4: result %+v", i)
			} else {
				if i.Advertise.RIBCount != 200 || i.Withdraw.RIBCount != 0 {
					t.Errorf("ingest vpnv4: RIB counts %d after advertise, %d after withdraw; want 200, 0", i.Advertise.RIBCount, i.Withdraw.RIBCount)
				}
				if kernel && (i.Advertise.KernelCount != 200 || i.Withdraw.KernelCount != 0 || i.Advertise.KernelSeconds <= 0) {
					t.Errorf("ingest vpnv4: kernel %d routes in %f s, %d after withdraw; want 200, >0, 0", i.Advertise.KernelCount, i.Advertise.KernelSeconds, i.Withdraw.KernelCount)
				}
			}

			r = roundTrip(t, Attach(ctx, o, 20))
			for _, run := range []AttachRun{r.Attach.OneInstance, r.Attach.ManyInstances} {
				if run.DetachErrors != 0 {
					t.Errorf("attach: %d detach errors, first: %s", run.DetachErrors, run.FirstDetachError)
				}
				for _, l := range []Latency{run.Attach, run.Detach} {
					if l.Count != 20 || l.P50Ms <= 0 || l.P50Ms > l.P99Ms || l.TotalSeconds <= 0 {
						t.Errorf("attach: latency %+v", l)
					}
				}
			}

			r = roundTrip(t, Convergence(ctx, o, ConvergenceParams{Samples: 5}))
			c := r.Convergence
			want := map[bool]string{true: "fdb", false: "rib"}[kernel]
			if c.AToB.Count != 5 || c.AToB.P50Ms <= 0 || c.Measure != want {
				t.Errorf("convergence: %+v (want 5 samples measured by %s)", c, want)
			}
			if c.AToRR.Count != 5 || c.AToRR.P50Ms > c.AToB.MaxMs {
				t.Errorf("convergence: A → reflector %+v beyond A → B %+v", c.AToRR, c.AToB)
			}

			r = roundTrip(t, Idle(ctx, o, IdleParams{Settle: time.Second}))
			if r.Idle.RSSBytes <= 0 || r.Idle.EstablishedSeconds <= 0 || r.Idle.APISeconds <= 0 {
				t.Errorf("idle: %+v", r.Idle)
			}
		})
	}
	out, err := runOut("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	// Only ours: another bagpipe-scale (make bench) may be running.
	if mine := fmt.Sprintf("bpscale-%d-", os.Getpid()); strings.Contains(out, mine) {
		t.Errorf("namespaces %s* left behind:\n%s", mine, out)
	}
}

// TestType2Routes decodes the injected UPDATEs back and checks every field
// a daemon relies on.
func TestType2Routes(t *testing.T) {
	vtep := netip4(10, 200, 1, 100)
	insts := Instances(3)
	routes := Type2Routes(7, insts, vtep)
	for _, pack := range []bool{false, true} {
		msgs, err := EncodeAdvertise(routes, pack)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 7, true: 3}[pack]; len(msgs) != want {
			t.Errorf("pack=%v: %d messages, want %d", pack, len(msgs), want)
		}
		dec := codec.NewDecoder()
		got := map[string]*route.Route{}
		for _, m := range msgs {
			u, err := dec.Decode(m, func(route.Family) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range u.Advertised {
				got[r.Key] = r
			}
		}
		for j, want := range routes {
			r := got[want.Key]
			if r == nil {
				t.Fatalf("pack=%v: route %d missing after decoding", pack, j)
			}
			in := insts[j%3]
			mac, ip, _ := r.MACIP()
			rd, _ := r.RD()
			if mac != RouteMAC(j) || ip != RouteIP(j) || r.Label != in.VNI || r.NextHop() != vtep ||
				!r.Attrs.HasRT(in.RT) || len(r.Attrs.Encaps) != 1 || r.Attrs.Encaps[0] != route.EncapVXLAN ||
				rd != route.NewRDIPv4(vtep, uint16(j%3+1)) {
				t.Errorf("pack=%v: route %d decoded as %s label %d next hop %s RTs %v encaps %v", pack, j, r, r.Label, r.NextHop(), r.RTs(), r.Attrs.Encaps)
			}
		}
		wd, err := EncodeWithdraw(routes, pack)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range wd {
			u, err := dec.Decode(m, func(route.Family) bool { return true })
			if err != nil {
				t.Fatal(err)
			}
			n += len(u.Withdrawn)
		}
		if n != 7 {
			t.Errorf("pack=%v: %d withdrawals decoded, want 7", pack, n)
		}
	}
	if RouteIP(256) != netip4(100, 64, 1, 0) || RouteMAC(0x01020304) != (route.MAC{0x0e, 0, 1, 2, 3, 4}) {
		t.Errorf("RouteIP(256) = %s, RouteMAC = %s", RouteIP(256), RouteMAC(0x01020304))
	}
}

package scale

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// IngestParams configures the ingest scenario.
type IngestParams struct {
	// Routes is N, the number of type-2 routes injected.
	Routes int
	// Instances is M, the number of E-VPN instances they are spread over.
	Instances int
	// Pack puts several NLRI per UPDATE instead of one.
	Pack bool
	// Rate caps the UPDATEs sent per second (0: full speed), for daemons
	// that reset the session under bursts.
	Rate int
	// Family is "evpn" (default: type-2 routes into E-VPN instances) or
	// "vpnv4" (VPNv4 routes into IP VPN instances, the VRFs).
	Family string
}

// Ingest families.
const (
	FamilyEVPN  = "evpn"
	FamilyVPNv4 = "vpnv4"
)

// Ingest runs the ingest scenario: M instances are created through the
// REST API, N type-2 routes (or VPNv4 routes with Family vpnv4) are sent
// at full speed and then withdrawn, and the time until the daemon's RIB
// (looking glass) and kernel (fdb entries, or routes in the VRF tables)
// have them all, its CPU time and memory are measured.
func Ingest(ctx context.Context, o Options, p IngestParams) (res *Result) {
	o.defaults()
	if p.Family == "" {
		p.Family = FamilyEVPN
	}
	vpnv4 := p.Family == FamilyVPNv4
	if vpnv4 {
		o.Spec.IPVPNDriver = o.Spec.Driver
	}
	res = newResult("ingest", o)
	ir := &IngestResult{Family: p.Family, Routes: p.Routes, Instances: p.Instances, Pack: p.Pack, Rate: p.Rate, Kernel: o.Spec.Driver == "linux"}
	res.Ingest = ir
	defer res.finish()
	if p.Routes <= 0 || p.Instances <= 0 {
		res.fail(fmt.Errorf("ingest needs routes > 0 and instances > 0 (got %d and %d)", p.Routes, p.Instances))
		return res
	}
	if p.Family != FamilyEVPN && !vpnv4 {
		res.fail(fmt.Errorf("ingest family %q: expected %s or %s", p.Family, FamilyEVPN, FamilyVPNv4))
		return res
	}
	rig, err := NewRig(ctx, o, 1)
	if err != nil {
		res.fail(err)
		return res
	}
	defer rig.Close()
	d, ns, peer := rig.Daemons[0], rig.NSs[0], rig.RR.Peer(rig.NSs[0].Local)
	ok := alive(ctx, d)

	insts := Instances(p.Instances)
	ports := portNames("bsp", p.Instances)
	if ir.Kernel {
		if err := ns.AddPorts(ports); err != nil {
			res.fail(err)
			return res
		}
	}
	o.Log.Info("creating VPN instances", "family", p.Family, "count", len(insts))
	for i, in := range insts {
		body := EVPNAttach(in.ID, localMAC(0xaa, i), localIP(16, i), ports[i], in.RT.String(), in.VNI)
		if vpnv4 {
			// One /24 per VRF: VM .1, gateway .254.
			body = IPVPNAttach(in.ID, localMAC(0xab, i), fmt.Sprintf("172.21.%d.1", i%250), fmt.Sprintf("172.21.%d.254", i%250), ports[i], in.RT.String())
		}
		if err := d.Attach(ctx, body); err != nil {
			res.fail(fmt.Errorf("creating instance %s: %w", in.ID, err))
			return res
		}
	}
	var fw kernelWatch
	if ir.Kernel {
		if vpnv4 {
			fw, err = WatchVRFRoutes(ns)
		} else {
			fw, err = WatchFDB(ns)
		}
		if err != nil {
			res.fail(err)
			return res
		}
		defer fw.Close()
	}

	var routes []*route.Route
	if vpnv4 {
		routes = VPNv4Routes(p.Routes, insts, ns.RemoteVTEP)
	} else {
		routes = Type2Routes(p.Routes, insts, ns.RemoteVTEP)
	}
	adv, err := EncodeAdvertise(routes, p.Pack)
	if err != nil {
		res.fail(err)
		return res
	}
	ir.Messages = len(adv)
	for _, m := range adv {
		ir.Bytes += int64(len(m))
	}
	time.Sleep(time.Second) // let the instance creation settle
	ribBase, err := d.ReceivedRoutes(ctx)
	if err != nil {
		res.fail(err)
		return res
	}
	kBase := 0
	if fw != nil {
		if kBase, err = fw.Dump(); err != nil {
			res.fail(err)
			return res
		}
	}
	idle, err := d.Stats()
	if err != nil {
		res.fail(err)
		return res
	}
	ir.IdleRSSBytes = idle.RSS
	runtime.GC()

	o.Log.Info("advertising", "routes", p.Routes, "messages", len(adv), "bytes", ir.Bytes)
	peer.SetReplay(adv)
	ph, err := ingestPhase(ctx, o, d, fw, peer, adv, p.Routes, p.Rate,
		func(n int) bool { return n >= ribBase+p.Routes }, func(n int) bool { return n >= kBase+p.Routes }, ok)
	ph.RIBCount -= ribBase
	ph.KernelCount -= kBase
	ir.Advertise = ph
	ir.BytesPerRoute = float64(ph.RSSBytes-ir.IdleRSSBytes) / float64(p.Routes)
	if err != nil {
		res.fail(fmt.Errorf("advertisement: %w", err))
		return res
	}
	adv = nil
	peer.SetReplay(nil)
	wd, err := EncodeWithdraw(routes, p.Pack)
	if err != nil {
		res.fail(err)
		return res
	}
	routes = nil
	runtime.GC()
	debug.FreeOSMemory()
	o.Log.Info("withdrawing", "routes", p.Routes, "messages", len(wd))
	ph, err = ingestPhase(ctx, o, d, fw, peer, wd, p.Routes, p.Rate,
		func(n int) bool { return n <= ribBase }, func(n int) bool { return n <= kBase }, ok)
	ph.RIBCount -= ribBase
	ph.KernelCount -= kBase
	ir.Withdraw = ph
	if fw != nil {
		if lost, lerr := fw.Lost(); lost {
			ir.KernelMethod = fmt.Sprintf("dumps (notifications lost: %v)", lerr)
		} else {
			ir.KernelMethod = "notifications"
		}
	}
	if err != nil {
		res.fail(fmt.Errorf("withdrawal: %w", err))
	}
	return res
}

// ingestPhase sends msgs and waits until the RIB count and (with fw) the
// kernel count (fdb entries or VRF routes) satisfy their conditions, then measures CPU and memory.
func ingestPhase(ctx context.Context, o Options, d *Daemon, fw kernelWatch, peer *RRPeer, msgs [][]byte, n, rate int,
	ribDone, kernelDone func(int) bool, ok func() error) (ph Phase, err error) {
	before, err := d.Stats()
	if err != nil {
		return ph, err
	}
	downs := peer.Downs()
	t0 := time.Now()
	if rate <= 0 {
		// Queue in chunks so the writer starts at once; the session writer
		// batches queued messages into large writes.
		for i := 0; i < len(msgs); i += 4096 {
			peer.Send(msgs[i:min(i+4096, len(msgs))]...)
		}
	} else {
		go pace(ctx, peer, msgs, rate)
	}
	defer func() { ph.SessionResets = int(peer.Downs() - downs) }()
	type outcome struct {
		at  time.Time
		n   int
		err error
	}
	ribCh := make(chan outcome, 1)
	go func() {
		end := t0.Add(o.Timeout)
		last := 0
		for {
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			cnt, err := d.ReceivedRoutes(c)
			cancel()
			now := time.Now()
			if err == nil {
				last = cnt
				if ribDone(cnt) {
					ribCh <- outcome{at: now, n: cnt}
					return
				}
			}
			if aerr := ok(); aerr != nil {
				ribCh <- outcome{n: last, err: aerr}
				return
			}
			if now.After(end) {
				ribCh <- outcome{n: last, err: fmt.Errorf("looking glass counts %d received routes after %s (last error %v)", last, o.Timeout, err)}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var kern outcome
	if fw != nil {
		at, err := fw.Wait(kernelDone, o.Timeout, ok)
		kern = outcome{at: at, err: err}
		kern.n, _ = fw.Count()
	}
	rib := <-ribCh
	ph.RIBCount = rib.n
	if rib.err == nil {
		ph.RIBSeconds = rib.at.Sub(t0).Seconds()
		ph.RIBRate = float64(n) / ph.RIBSeconds
	}
	if fw != nil {
		ph.KernelCount = kern.n
		if kern.err == nil {
			ph.KernelSeconds = kern.at.Sub(t0).Seconds()
			ph.KernelRate = float64(n) / ph.KernelSeconds
		}
	}
	after, serr := d.Stats()
	if serr == nil {
		ph.CPUSeconds = after.CPU - before.CPU
	}
	// RSS is sampled once the daemon is quiet: its instances may still be
	// draining queues when the counters are reached, and memory freed at
	// the end of a burst is returned to the system only when it idles.
	if st, err := settle(d, time.Second, 10*time.Second); err == nil {
		ph.RSSBytes, ph.PeakRSSBytes = st.RSS, st.HWM
	}
	if rib.err != nil {
		return ph, fmt.Errorf("RIB (%d session resets): %w", peer.Downs()-downs, rib.err)
	}
	if kern.err != nil {
		return ph, fmt.Errorf("kernel: %w", kern.err)
	}
	return ph, serr
}

// pace sends msgs at rate messages per second, in 10 ms slices.
func pace(ctx context.Context, peer *RRPeer, msgs [][]byte, rate int) {
	per := max(1, rate/100)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for i := 0; i < len(msgs); i += per {
		peer.Send(msgs[i:min(i+per, len(msgs))]...)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// settle waits atLeast, then until the daemon used under 5% of a core over
// the last 250 ms (or atMost has passed), and returns its stats then.
func settle(d *Daemon, atLeast, atMost time.Duration) (ProcStats, error) {
	const window = 250 * time.Millisecond
	deadline := time.Now().Add(atMost)
	time.Sleep(atLeast)
	prev, err := d.Stats()
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(window)
		var st ProcStats
		if st, err = d.Stats(); err != nil {
			break
		}
		quiet := st.CPU-prev.CPU < 0.05*window.Seconds()
		prev = st
		if quiet {
			break
		}
	}
	return prev, err
}

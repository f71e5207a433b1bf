package scale

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Attach runs the attach scenario: k attach_localport calls into one
// E-VPN, k detaches, then k attaches into k E-VPNs and k detaches, each
// call timed. With the linux driver k veth VM ports are created first
// (not timed).
func Attach(ctx context.Context, o Options, k int) (res *Result) {
	o.defaults()
	res = newResult("attach", o)
	ar := &AttachResult{Ports: k}
	res.Attach = ar
	defer res.finish()
	if k <= 0 {
		res.fail(fmt.Errorf("attach needs a port count > 0 (got %d)", k))
		return res
	}
	rig, err := NewRig(ctx, o, 1)
	if err != nil {
		res.fail(err)
		return res
	}
	defer rig.Close()
	d, ns := rig.Daemons[0], rig.NSs[0]
	ports := portNames("bsa", k)
	if o.Spec.Driver == "linux" {
		if err := ns.AddPorts(ports); err != nil {
			res.fail(err)
			return res
		}
	}
	one := make([]AttachBody, k)
	many := make([]AttachBody, k)
	for i := range k {
		one[i] = EVPNAttach("attach-one", localMAC(0xbb, i), localIP(17, i), ports[i], route.NewRT(AS, 2000).String(), 7000)
		many[i] = EVPNAttach(fmt.Sprintf("a%d-attach", i), localMAC(0xbc, i), localIP(18, i), ports[i],
			route.NewRT(AS, uint32(3000+i)).String(), uint32(8000+i))
	}
	o.Log.Info("attaching into one E-VPN", "ports", k)
	if ar.OneInstance, err = attachRun(ctx, d, one); err != nil {
		res.fail(fmt.Errorf("one E-VPN: %w", err))
		return res
	}
	o.Log.Info("attaching into one E-VPN each", "ports", k)
	if ar.ManyInstances, err = attachRun(ctx, d, many); err != nil {
		res.fail(fmt.Errorf("one E-VPN per port: %w", err))
	}
	return res
}

// attachRun attaches then detaches every body, one request at a time. An
// attach error ends the run; detach errors are counted and the run goes on
// (upstream answers 500 to detaches it did carry out, reference §11).
func attachRun(ctx context.Context, d *Daemon, bodies []AttachBody) (AttachRun, error) {
	var run AttachRun
	lat := make([]time.Duration, 0, len(bodies))
	t0 := time.Now()
	for _, b := range bodies {
		t := time.Now()
		if err := d.Attach(ctx, b); err != nil {
			run.Attach = Summarise(lat, time.Since(t0))
			return run, err
		}
		lat = append(lat, time.Since(t))
	}
	run.Attach = Summarise(lat, time.Since(t0))
	lat = lat[:0]
	t0 = time.Now()
	for _, b := range bodies {
		t := time.Now()
		err := d.Detach(ctx, b)
		lat = append(lat, time.Since(t))
		if err != nil {
			if aerr := d.Alive(); aerr != nil || ctx.Err() != nil {
				run.Detach = Summarise(lat, time.Since(t0))
				return run, errorsJoin(err, aerr, ctx.Err())
			}
			if run.DetachErrors == 0 {
				run.FirstDetachError = err.Error()
			}
			run.DetachErrors++
		}
	}
	run.Detach = Summarise(lat, time.Since(t0))
	return run, nil
}

// ConvergenceParams configures the convergence scenario.
type ConvergenceParams struct {
	// Samples is the number of timed attachments.
	Samples int
}

// Convergence runs the convergence scenario: two daemons A and B peer with
// the reflector, which reflects between them; each sample attaches a new
// MAC on A and times its arrival on B (fdb entry with the linux driver, the
// looking glass's received route count otherwise).
func Convergence(ctx context.Context, o Options, p ConvergenceParams) (res *Result) {
	o.defaults()
	res = newResult("convergence", o)
	cr := &ConvergenceResult{Samples: p.Samples, Measure: "rib"}
	res.Convergence = cr
	defer res.finish()
	if p.Samples <= 0 {
		res.fail(fmt.Errorf("convergence needs samples > 0 (got %d)", p.Samples))
		return res
	}
	rig, err := NewRig(ctx, o, 2)
	if err != nil {
		res.fail(err)
		return res
	}
	defer rig.Close()
	rig.RR.SetReflect(true)
	a, b := rig.Daemons[0], rig.Daemons[1]
	rrA := rig.RR.Peer(rig.NSs[0].Local)
	portsA := portNames("bsc", p.Samples+1)
	linux := o.Spec.Driver == "linux"
	if linux {
		cr.Measure = "fdb"
		if err := rig.NSs[0].AddPorts(portsA); err != nil {
			res.fail(err)
			return res
		}
		if err := rig.NSs[1].AddPorts([]string{"bsb0"}); err != nil {
			res.fail(err)
			return res
		}
	}
	const inst, vni = "conv", 9000
	rt := route.NewRT(AS, 4000).String()
	body := func(i int) AttachBody { return EVPNAttach(inst, localMAC(0xcc, i), localIP(19, i), portsA[i], rt, vni) }

	// Arrival of a MAC on B, by MAC string.
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	var fw *FDBWatch
	if linux {
		if fw, err = WatchFDB(rig.NSs[1]); err != nil {
			res.fail(err)
			return res
		}
		defer fw.Close()
		fw.OnChange(func(mac net.HardwareAddr, add bool, at time.Time) {
			if add {
				mu.Lock()
				if _, ok := arrived[mac.String()]; !ok {
					arrived[mac.String()] = at
				}
				mu.Unlock()
			}
		})
	}
	// waitB waits for MAC i on B and returns when it arrived.
	ribPrev := 0
	waitB := func(i int) (time.Time, error) {
		mac := localMAC(0xcc, i)
		end := time.Now().Add(o.Timeout)
		for {
			if linux {
				mu.Lock()
				at, ok := arrived[mac]
				mu.Unlock()
				if ok {
					return at, nil
				}
				time.Sleep(200 * time.Microsecond)
			} else {
				n, err := b.ReceivedRoutes(ctx)
				if err == nil && n > ribPrev {
					ribPrev = n
					return time.Now(), nil
				}
				time.Sleep(time.Millisecond)
			}
			if err := errorsJoin(alive(ctx, a)(), alive(ctx, b)()); err != nil {
				return time.Time{}, err
			}
			if time.Now().After(end) {
				return time.Time{}, fmt.Errorf("MAC %s attached on A did not reach B within %s", mac, o.Timeout)
			}
		}
	}
	// Warm-up, not timed: the E-VPN on both nodes, and a first MAC.
	if err := b.Attach(ctx, EVPNAttach(inst, localMAC(0xcd, 0), localIP(20, 0), "bsb0", rt, vni)); err != nil {
		res.fail(fmt.Errorf("warm-up attach on B: %w", err))
		return res
	}
	if ribPrev, err = b.ReceivedRoutes(ctx); err != nil {
		res.fail(err)
		return res
	}
	if err := a.Attach(ctx, body(0)); err != nil {
		res.fail(fmt.Errorf("warm-up attach on A: %w", err))
		return res
	}
	if _, err := waitB(0); err != nil {
		res.fail(fmt.Errorf("warm-up: %w", err))
		return res
	}
	time.Sleep(500 * time.Millisecond)
	if !linux {
		ribPrev, _ = b.ReceivedRoutes(ctx)
	}
	var toB, toRR []time.Duration
	t0 := time.Now()
	for i := 1; i <= p.Samples; i++ {
		u0, _ := rrA.Updates()
		t := time.Now()
		if err := a.Attach(ctx, body(i)); err != nil {
			res.fail(fmt.Errorf("sample %d: %w", i, err))
			break
		}
		at, err := waitB(i)
		if err != nil {
			res.fail(fmt.Errorf("sample %d: %w", i, err))
			break
		}
		toB = append(toB, at.Sub(t))
		if u, last := rrA.Updates(); u > u0 {
			toRR = append(toRR, last.Sub(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cr.AToB = Summarise(toB, time.Since(t0))
	cr.AToRR = Summarise(toRR, time.Since(t0))
	return res
}

// IdleParams configures the idle scenario.
type IdleParams struct {
	// Settle is how long after the session came up the RSS is read.
	Settle time.Duration
}

// Idle runs the idle scenario: start-up time to the REST API and to the
// first Established session, and the RSS Settle later.
func Idle(ctx context.Context, o Options, p IdleParams) (res *Result) {
	o.defaults()
	if p.Settle == 0 {
		p.Settle = 5 * time.Second
	}
	res = newResult("idle", o)
	ir := &IdleResult{}
	res.Idle = ir
	defer res.finish()
	rig, err := NewRig(ctx, o, 1)
	if err != nil {
		res.fail(err)
		return res
	}
	defer rig.Close()
	d := rig.Daemons[0]
	ir.APISeconds = rig.APIUp[0].Sub(d.Started).Seconds()
	ir.EstablishedSeconds = rig.Established[0].Sub(d.Started).Seconds()
	select {
	case <-time.After(time.Until(rig.Established[0].Add(p.Settle))):
	case <-ctx.Done():
		res.fail(ctx.Err())
		return res
	}
	st, err := d.Stats()
	if err != nil {
		res.fail(err)
		return res
	}
	ir.RSSBytes, ir.CPUSeconds = st.RSS, st.CPU
	return res
}

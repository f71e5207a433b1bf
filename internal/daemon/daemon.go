// Package daemon assembles bagpipe-bgp from its layers (DESIGN.md §2):
// config → route engine → BGP manager → VPN manager + dataplane drivers →
// REST API and looking glass, and runs them until the context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/api"
	"github.com/bagpipe-go/bagpipe/internal/api/lg"
	"github.com/bagpipe-go/bagpipe/internal/bgp"
	"github.com/bagpipe-go/bagpipe/internal/config"
	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/linux"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/linuxipvpn"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/ovs"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/veth"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// Version is the daemon version shown in the looking glass.
var Version = "0.1.0"

// Daemon is one bagpipe-bgp process.
type Daemon struct {
	Config *config.Config
	Log    *slog.Logger
	Logs   *lg.LogBuffer
	Engine *engine.Engine
	BGP    *bgp.Manager
	VPN    *vpn.Manager
	API    *api.Server
	Start  time.Time

	evpnDriver  dataplane.EVPNDriver
	ipvpnDriver dataplane.IPVPNDriver
	veths       *veth.Netlink // nil with dummy dataplanes
}

// New builds the daemon from a parsed configuration. logs receives a copy
// of WARNING+ records for the looking glass (may be nil).
func New(cfg *config.Config, log *slog.Logger, logs *lg.LogBuffer) (*Daemon, error) {
	if logs == nil {
		logs = lg.NewLogBuffer(100)
	}
	d := &Daemon{Config: cfg, Log: log, Logs: logs, Start: time.Now()}
	d.Engine = engine.New(log)
	d.BGP = bgp.New(bgp.Config{
		LocalAddress: cfg.BGP.LocalAddress,
		AS:           cfg.BGP.MyAS,
		Peers:        cfg.BGP.Peers,
		Port:         int(cfg.BGP.Port),
		EnableRTC:    cfg.BGP.EnableRTC,
		Passive:      cfg.BGP.Passive,
		HoldTime:     cfg.BGP.HoldTime,
		ConnectRetry: cfg.BGP.ConnectRetry,
	}, d.Engine, log)

	var err error
	d.evpnDriver, err = newEVPNDriver(cfg, log)
	if err != nil {
		return nil, err
	}
	d.ipvpnDriver, err = newIPVPNDriver(cfg, log)
	if err != nil {
		d.closeDrivers()
		return nil, err
	}
	// E-VPN ↔ IP VPN veths (reference §5.5): real ones as soon as either
	// dataplane is a real one, recorded only with dummy dataplanes.
	var links vpn.Links = veth.NewRecorder()
	if cfg.EVPN.Driver != config.DriverDummy || cfg.IPVPN.Driver != config.DriverDummy {
		if d.veths, err = veth.New("", log); err != nil {
			d.closeDrivers()
			return nil, err
		}
		links = d.veths
	}
	host, _ := os.Hostname()
	d.VPN, err = vpn.NewManager(vpn.ManagerConfig{
		Engine:                d.Engine,
		LocalAddress:          cfg.BGP.LocalAddress,
		DataplaneLocalAddress: cfg.EVPN.LocalAddress,
		IPVPNLocalAddress:     cfg.IPVPN.LocalAddress,
		EVPNDriver:            d.evpnDriver,
		IPVPNDriver:           d.ipvpnDriver,
		Links:                 links,
		Log:                   log,
		Hostname:              host,
	})
	if err != nil {
		d.closeDrivers()
		return nil, err
	}
	d.API = api.New(api.Config{Backend: backend{d.VPN}, LookingGlass: d.lookingGlass(), Log: log})
	return d, nil
}

// newEVPNDriver instantiates the configured E-VPN dataplane driver.
func newEVPNDriver(cfg *config.Config, log *slog.Logger) (dataplane.EVPNDriver, error) {
	switch cfg.EVPN.Driver {
	case config.DriverDummy:
		return dummy.New(dummy.Options{}), nil
	case config.DriverLinux:
		opts, err := linux.OptionsFromConfig(linux.Options{
			LocalAddress: cfg.EVPN.LocalAddress,
			Log:          log,
		}, cfg.EVPN.Options)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_EVPN] %w", cfg.File, err)
		}
		drv, err := linux.New(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_EVPN] dataplane_driver = linux: %w", cfg.File, err)
		}
		return drv, nil
	}
	return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_EVPN] dataplane_driver = %q: this driver is not available yet in this build; use \"dummy\" or \"linux\"", cfg.File, cfg.EVPN.Driver)
}

// newIPVPNDriver instantiates the configured IP VPN dataplane driver
// ([DATAPLANE_DRIVER_IPVPN] dataplane_driver).
func newIPVPNDriver(cfg *config.Config, log *slog.Logger) (dataplane.IPVPNDriver, error) {
	switch cfg.IPVPN.Driver {
	case config.DriverDummy:
		return dummy.NewIPVPN(dummy.Options{Log: log}), nil
	case config.DriverLinux:
		opts, err := linuxipvpn.OptionsFromConfig(linuxipvpn.Options{
			LocalAddress: cfg.IPVPN.LocalAddress,
			Log:          log,
		}, cfg.IPVPN.Options)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_IPVPN] %w", cfg.File, err)
		}
		drv, err := linuxipvpn.New(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_IPVPN] dataplane_driver = linux: %w", cfg.File, err)
		}
		return drv, nil
	case config.DriverOVS:
		opts, err := ovs.OptionsFromConfig(cfg.IPVPN.Options, cfg.IPVPN.LocalAddress)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_IPVPN] %w", cfg.File, err)
		}
		opts.Log = log
		drv, err := ovs.New(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_IPVPN] dataplane_driver = ovs: %w", cfg.File, err)
		}
		return drv, nil
	}
	return nil, fmt.Errorf("%s: [DATAPLANE_DRIVER_IPVPN] dataplane_driver = %q: this driver is not available in this build; use \"dummy\", \"linux\" or \"ovs\"", cfg.File, cfg.IPVPN.Driver)
}

// closeDrivers releases the dataplane drivers and the veth handle.
func (d *Daemon) closeDrivers() {
	if d.evpnDriver != nil {
		d.evpnDriver.Close()
	}
	if d.ipvpnDriver != nil {
		d.ipvpnDriver.Close()
	}
	if d.veths != nil {
		d.veths.Close()
	}
}

// backend adapts the VPN manager to the REST layer.
type backend struct{ m *vpn.Manager }

func (b backend) Attach(ctx context.Context, r vpn.AttachRequest) error { return b.m.Attach(ctx, r) }
func (b backend) Detach(ctx context.Context, r vpn.DetachRequest) error { return b.m.Detach(ctx, r) }
func (b backend) HasDriver(t vpn.Type) bool                             { return b.m.HasDriver(t) }

// Run serves the REST API and runs the engine and BGP until ctx ends, then
// stops the VPN instances.
func (d *Daemon) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", d.Config.API.Addr())
	if err != nil {
		return fmt.Errorf("REST API: cannot listen on %s: %w (set [API] host/port to a free address)", d.Config.API.Addr(), err)
	}
	return d.RunWithListener(ctx, ln)
}

// RunWithListener is Run with an already open API listener.
func (d *Daemon) RunWithListener(ctx context.Context, ln net.Listener) error {
	engCtx, stopEngine := context.WithCancel(context.Background())
	defer stopEngine()
	engDone := make(chan struct{})
	go func() {
		defer close(engDone)
		d.Engine.Run(engCtx)
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	bgpCtx, stopBGP := context.WithCancel(ctx)
	defer stopBGP()
	go newMemoryPolicy(d.Log).run(bgpCtx)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := d.BGP.Run(bgpCtx); err != nil {
			errs <- err
		}
	}()
	go func() {
		defer wg.Done()
		if err := d.API.Serve(bgpCtx, ln); err != nil && !errors.Is(err, net.ErrClosed) {
			errs <- fmt.Errorf("REST API: %w", err)
		}
	}()
	d.Log.Info("bagpipe-bgp started", "component", "daemon", "api", ln.Addr().String(),
		"local_address", d.Config.BGP.LocalAddress.String(), "peers", len(d.Config.BGP.Peers))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
		d.Log.Error("stopping", "component", "daemon", "err", runErr)
	}
	stopBGP()
	wg.Wait()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.VPN.Stop(stopCtx)
	d.Engine.Sync()
	stopEngine()
	<-engDone
	d.closeDrivers()
	return runErr
}

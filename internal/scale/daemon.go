package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AS is the AS of every daemon and of the route reflector (iBGP).
const AS = 64512

// APIPort is the REST port the daemons listen on (in their namespace).
const APIPort = 8082

// DaemonSpec says how to run the daemon under test.
type DaemonSpec struct {
	// Template is the command line, run with sh -c inside the namespace;
	// {conf} is replaced by the absolute path of the generated bgp.conf.
	Template string
	// Driver is the E-VPN dataplane driver written in bgp.conf ("dummy" or
	// "linux").
	Driver string
	// IPVPNDriver is the IP VPN dataplane driver ("dummy" when empty, or
	// "linux", then given vxlan_dst_port IPVPNVXLANPort so that it does
	// not clash with the E-VPN linux driver's VXLAN devices).
	IPVPNDriver string
	// ExtraConf is appended verbatim to the generated bgp.conf.
	ExtraConf string
	// Dir holds the generated files and the daemon logs.
	Dir string
}

// Daemon is one running daemon under test.
type Daemon struct {
	// NS is the namespace it runs in.
	NS *Namespace
	// PID is its process id (the command is exec'd, so this is the daemon).
	PID int
	// Conf and Log are the paths of its bgp.conf and of its output.
	Conf, Log string
	// Started is when the process was started.
	Started time.Time

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	base   string
	client *http.Client
	log    *slog.Logger
}

// Conf renders the bgp.conf of a daemon in ns whose peer listens on
// bgpPort.
func (s DaemonSpec) Conf(ns *Namespace, bgpPort int) string {
	return fmt.Sprintf(`[BGP]
local_address = %s
peers = %s
my_as = %d
enable_rtc = true
bgp_port = %d

[API]
host = %s
port = %d

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = %s

[DATAPLANE_DRIVER_IPVPN]
%s
%s`, ns.Local, ns.Peer, AS, bgpPort, ns.Local, APIPort, s.Driver, s.ipvpnConf(), s.ExtraConf)
}

// IPVPNVXLANPort is the VXLAN UDP port given to the linux IP VPN driver.
const IPVPNVXLANPort = 4790

func (s DaemonSpec) ipvpnConf() string {
	if s.IPVPNDriver == "" || s.IPVPNDriver == "dummy" {
		return "dataplane_driver = dummy"
	}
	return fmt.Sprintf("dataplane_driver = %s\nvxlan_dst_port = %d", s.IPVPNDriver, IPVPNVXLANPort)
}

// StartDaemon writes the bgp.conf (peer: ns.Peer port bgpPort) and starts
// the daemon inside ns, in its own process group.
func StartDaemon(s DaemonSpec, ns *Namespace, bgpPort int, log *slog.Logger) (*Daemon, error) {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("work directory %q: %w", s.Dir, err)
	}
	conf := filepath.Join(dir, ns.Name+".conf")
	if err := os.WriteFile(conf, []byte(s.Conf(ns, bgpPort)), 0o644); err != nil {
		return nil, fmt.Errorf("writing bgp.conf: %w", err)
	}
	logPath := filepath.Join(dir, ns.Name+".log")
	out, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the daemon log: %w", err)
	}
	defer out.Close()
	line := strings.ReplaceAll(s.Template, "{conf}", conf)
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "sh", "-c", "exec "+line)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d := &Daemon{NS: ns, Conf: conf, Log: logPath, cmd: cmd, done: make(chan struct{}),
		base:   fmt.Sprintf("http://%s:%d", ns.Local, APIPort),
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		log:    log.With("pid", 0)}
	d.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %q in %s: %w", line, ns.Name, err)
	}
	d.PID = cmd.Process.Pid
	d.log = log.With("pid", d.PID)
	d.log.Info("daemon started", "command", line, "conf", conf, "log", logPath)
	go func() { d.err = cmd.Wait(); close(d.done) }()
	return d, nil
}

// Exited reports whether the daemon has exited, with its wait error.
func (d *Daemon) Exited() (bool, error) {
	select {
	case <-d.done:
		return true, d.err
	default:
		return false, nil
	}
}

// Alive returns an error saying the daemon died, with the end of its log.
func (d *Daemon) Alive() error {
	if ex, err := d.Exited(); ex {
		return fmt.Errorf("the daemon (pid %d) exited (%v); end of %s:\n%s", d.PID, err, d.Log, d.LogTail(2000))
	}
	return nil
}

// LogTail returns the last n bytes of the daemon's output.
func (d *Daemon) LogTail(n int64) string {
	b, err := os.ReadFile(d.Log)
	if err != nil {
		return err.Error()
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return string(b)
}

// Stop ends the daemon's process group (SIGTERM, SIGKILL after 10 s) and
// waits for it.
func (d *Daemon) Stop() {
	if ex, _ := d.Exited(); ex {
		return
	}
	_ = syscall.Kill(-d.PID, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-d.PID, syscall.SIGKILL)
		<-d.done
	}
}

// ProcStats are resource figures of a process read from /proc.
type ProcStats struct {
	// CPU is user+system time of the process and of its waited-for
	// children, in seconds.
	CPU float64
	// RSS and HWM (peak RSS) are in bytes.
	RSS, HWM int64
}

// clkTck is USER_HZ, 100 on every Linux architecture we run on.
const clkTck = 100

// Stats reads /proc/PID/stat and /proc/PID/status of the daemon.
func (d *Daemon) Stats() (ProcStats, error) { return readProcStats(d.PID) }

func readProcStats(pid int) (ProcStats, error) {
	var st ProcStats
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("reading the daemon's CPU time: %w", err)
	}
	// Fields after the parenthesised command name (which may hold spaces).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return st, fmt.Errorf("/proc/%d/stat: unexpected format %q", pid, s)
	}
	// f[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return st, fmt.Errorf("/proc/%d/stat field %d: %w", pid, i+3, err)
		}
		ticks += v
	}
	st.CPU = float64(ticks) / clkTck
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, fmt.Errorf("reading the daemon's memory figures: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = n * 1024
		case "VmHWM":
			st.HWM = n * 1024
		}
	}
	return st, nil
}

// AttachBody is the body of an E-VPN attach_localport / detach_localport
// request (upstream REST API, reference §2.3).
type AttachBody struct {
	VPNType       string         `json:"vpn_type"`
	VPNInstanceID string         `json:"vpn_instance_id"`
	MACAddress    string         `json:"mac_address"`
	IPAddress     string         `json:"ip_address,omitempty"`
	LocalPort     map[string]any `json:"local_port"`
	ImportRT      []string       `json:"import_rt"`
	ExportRT      []string       `json:"export_rt"`
	VNI           uint32         `json:"vni,omitempty"`
	GatewayIP     string         `json:"gateway_ip,omitempty"`
}

// EVPNAttach builds an E-VPN attach body.
func EVPNAttach(instance, mac, ip, port, rt string, vni uint32) AttachBody {
	return AttachBody{VPNType: "evpn", VPNInstanceID: instance, MACAddress: mac, IPAddress: ip,
		LocalPort: map[string]any{"linuxif": port}, ImportRT: []string{rt}, ExportRT: []string{rt}, VNI: vni}
}

// IPVPNAttach builds an IP VPN attach body (ip is the VM's address, gw
// its gateway).
func IPVPNAttach(instance, mac, ip, gw, port, rt string) AttachBody {
	return AttachBody{VPNType: "ipvpn", VPNInstanceID: instance, MACAddress: mac, IPAddress: ip, GatewayIP: gw,
		LocalPort: map[string]any{"linuxif": port}, ImportRT: []string{rt}, ExportRT: []string{rt}}
}

// Attach posts /attach_localport.
func (d *Daemon) Attach(ctx context.Context, b AttachBody) error {
	return d.post(ctx, "/attach_localport", b)
}

// Detach posts /detach_localport.
func (d *Daemon) Detach(ctx context.Context, b AttachBody) error {
	return d.post(ctx, "/detach_localport", b)
}

func (d *Daemon) post(ctx context.Context, path string, body any) error {
	js, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encoding %s body: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+path, bytes.NewReader(js))
	if err != nil {
		return fmt.Errorf("building %s request: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s%s: %w", d.base, path, errors.Join(err, d.Alive()))
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d: %s (request %s)", path, resp.StatusCode, bytes.TrimSpace(rb), js)
	}
	return nil
}

// get fetches a looking-glass path and decodes its JSON into v.
func (d *Daemon) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.base+path, nil)
	if err != nil {
		return fmt.Errorf("building GET %s: %w", path, err)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s%s: %w", d.base, path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: reading body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", path, resp.StatusCode, bytes.TrimSpace(rb))
	}
	if err := json.Unmarshal(rb, v); err != nil {
		return fmt.Errorf("GET %s: decoding %q: %w", path, rb, err)
	}
	return nil
}

// ReceivedRoutes reads the looking glass's received_routes_count.
func (d *Daemon) ReceivedRoutes(ctx context.Context) (int, error) {
	var n int
	err := d.get(ctx, "/looking-glass/summary/route_counts/received_routes_count", &n)
	return n, err
}

// Ping calls /ping (any JSON number is fine).
func (d *Daemon) Ping(ctx context.Context) error {
	var n json.Number
	return d.get(ctx, "/ping", &n)
}

// WaitAPI waits until /ping answers, or the daemon dies, or timeout.
func (d *Daemon) WaitAPI(ctx context.Context, timeout time.Duration) (time.Time, error) {
	end := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		err := d.Ping(c)
		cancel()
		if err == nil {
			return time.Now(), nil
		}
		if err := d.Alive(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return time.Time{}, fmt.Errorf("the daemon's REST API at %s did not answer within %s (%v); see %s", d.base, timeout, err, d.Log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

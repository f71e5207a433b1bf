package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// wait bounds every convergence wait: generous, since a test must not fail
// because the machine is slow (the agent's back-off is capped at 10 s).
const wait = 90 * time.Second

// controller is a bagpipe-controller process with an embedded etcd.
type controller struct {
	t    *testing.T
	bin  string
	args []string
	url  string
	proc *testenv.Process
	cli  *ctlclient.Client
}

func startController(t *testing.T, bin string) *controller {
	t.Helper()
	api, client, peer := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	c := &controller{t: t, bin: filepath.Join(bin, "bagpipe-controller"), url: fmt.Sprintf("http://127.0.0.1:%d", api)}
	c.args = []string{"--listen", fmt.Sprintf("127.0.0.1:%d", api), "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", peer), "--log-level", "debug"}
	c.cli = ctlclient.New(c.url, "")
	c.start()
	return c
}

func (c *controller) start() {
	c.t.Helper()
	c.proc = testenv.StartProcess(c.t, c.bin, c.args, nil)
	testenv.WaitFor(c.t, wait, "bagpipe-controller API up", func() (bool, error) {
		if c.proc.Exited() {
			c.t.Fatalf("bagpipe-controller exited:\n%s", c.proc.Log())
		}
		_, err := c.cli.List(context.Background(), "network", nil)
		return err == nil, err
	})
}

func (c *controller) create(kind string, attrs map[string]any) ctlclient.Resource {
	c.t.Helper()
	r, err := c.cli.Create(context.Background(), kind, attrs)
	if err != nil {
		c.t.Fatalf("create %s %v: %v", kind, attrs, err)
	}
	return r
}

// bgp is a bagpipe-bgp process with the dummy dataplane.
type bgp struct {
	t    *testing.T
	bin  string
	args []string
	url  string
	proc *testenv.Process
}

func startBGP(t *testing.T, bin string) *bgp {
	t.Helper()
	port := testenv.FreePort(t)
	conf := testenv.WriteBagpipeConf(t, t.TempDir(), testenv.BagpipeConf{
		LocalAddress: netip.MustParseAddr("127.0.0.1"), APIPort: port, BGPPort: testenv.FreePort(t),
	})
	b := &bgp{t: t, bin: filepath.Join(bin, "bagpipe-bgp"), url: fmt.Sprintf("http://127.0.0.1:%d", port),
		args: []string{"--config-file", conf, "--log-level", "debug"}}
	b.start()
	return b
}

func (b *bgp) start() {
	b.t.Helper()
	b.proc = testenv.StartProcess(b.t, b.bin, b.args, nil)
	testenv.WaitFor(b.t, wait, "bagpipe-bgp API up", func() (bool, error) {
		if b.proc.Exited() {
			b.t.Fatalf("bagpipe-bgp exited:\n%s", b.proc.Log())
		}
		_, status, err := b.get("/ping")
		return err == nil && status == http.StatusOK, err
	})
}

func (b *bgp) get(path string) ([]byte, int, error) {
	resp, err := http.Get(b.url + path)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

// endpoints returns the endpoints of instance evpn_<network> by local
// port name (looking glass vpns/instances/<id>/ports), as "mac ip".
func (b *bgp) endpoints(network string) (map[string][]string, error) {
	body, status, err := b.get("/looking-glass/vpns/instances/" + url.PathEscape("evpn_"+network) + "/ports")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	if status == http.StatusNotFound {
		return out, nil // no instance: no endpoint
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("looking glass: HTTP %d: %s", status, body)
	}
	var ports map[string]struct {
		Endpoints []struct {
			MAC string `json:"mac_address"`
			IP  any    `json:"ip_address"`
		} `json:"endpoints"`
	}
	if err := json.Unmarshal(body, &ports); err != nil {
		return nil, fmt.Errorf("looking glass: %w: %s", err, body)
	}
	for name, p := range ports {
		for _, ep := range p.Endpoints {
			out[name] = append(out[name], fmt.Sprintf("%s %v", ep.MAC, ep.IP))
		}
	}
	return out, nil
}

// tap is the local port name the controller gives a port.
func tap(port ctlclient.Resource) string { return "tap" + port["id"].(string)[:11] }

// endpointOf is the "mac ip" of a port's first address.
func endpointOf(port ctlclient.Resource) string {
	ips := port["fixed_ips"].([]any)
	return fmt.Sprintf("%s %s/32", port["mac_address"], ips[0].(map[string]any)["ip_address"])
}

// waitEndpoints waits until bagpipe-bgp has exactly want in the network's
// E-VPN (local port → "mac ip").
func waitEndpoints(t *testing.T, b *bgp, network string, want map[string]string, what string) {
	t.Helper()
	testenv.WaitFor(t, wait, what, func() (bool, error) {
		got, err := b.endpoints(network)
		if err != nil {
			return false, err
		}
		w := map[string][]string{}
		for k, v := range want {
			w[k] = []string{v}
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			return false, fmt.Errorf("bagpipe-bgp has %v, want %v", got, w)
		}
		return true, nil
	})
}

// waitStatus waits until the controller shows the port with status.
func waitStatus(t *testing.T, c *controller, portID, status string) {
	t.Helper()
	testenv.WaitFor(t, wait, "port "+portID+" "+status, func() (bool, error) {
		p, err := c.cli.Show(context.Background(), "port", portID)
		if err != nil {
			return false, err
		}
		return p["status"] == status, fmt.Errorf("status %v, want %s", p["status"], status)
	})
}

// TestAgent runs bagpipe-agent against a real bagpipe-controller and a
// real bagpipe-bgp (dummy dataplane) through: initial sync, new, deleted
// and administratively down ports, a bagpipe-bgp restart and a controller
// outage.
func TestAgent(t *testing.T) {
	bin := testenv.BuildBinaries(t)
	ctl := startController(t, bin)
	b := startBGP(t, bin)
	const host = "node1"

	net := ctl.create("network", map[string]any{"name": "net1"})
	netID := net["id"].(string)
	ctl.create("subnet", map[string]any{"network_id": netID, "cidr": "10.0.0.0/24"})
	p1 := ctl.create("port", map[string]any{"network_id": netID, "binding:host_id": host})
	p1ID := p1["id"].(string)
	other := ctl.create("port", map[string]any{"network_id": netID, "binding:host_id": "node2"})

	agentArgs := []string{"--controller", ctl.url, "--host", host, "--bagpipe-bgp", b.url,
		"--ping-interval", "200ms", "--log-level", "debug"}
	agent := testenv.StartProcess(t, filepath.Join(bin, "bagpipe-agent"), agentArgs, nil)

	t.Log("initial sync: the port created before the agent started is attached (not the other host's)")
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "initial sync")
	waitStatus(t, ctl, p1ID, "ACTIVE")
	if p, err := ctl.cli.Show(context.Background(), "port", other["id"].(string)); err != nil || p["status"] != "DOWN" {
		t.Errorf("the port of another host: %v, %v; want it DOWN", p["status"], err)
	}

	t.Log("a new port is attached")
	p2 := ctl.create("port", map[string]any{"network_id": netID, "binding:host_id": host})
	p2ID := p2["id"].(string)
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1), tap(p2): endpointOf(p2)}, "new port attached")
	waitStatus(t, ctl, p2ID, "ACTIVE")

	t.Log("a deleted port is detached")
	if err := ctl.cli.Delete(context.Background(), "port", p2ID); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "deleted port detached")

	t.Log("an administratively down port is detached and DOWN, then back")
	if _, err := ctl.cli.Update(context.Background(), "port", p1ID, map[string]any{"admin_state_up": false}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, b, netID, map[string]string{}, "admin down port detached")
	waitStatus(t, ctl, p1ID, "DOWN")
	if _, err := ctl.cli.Update(context.Background(), "port", p1ID, map[string]any{"admin_state_up": true}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "admin up port attached again")
	waitStatus(t, ctl, p1ID, "ACTIVE")

	t.Log("bagpipe-bgp restart: the port goes DOWN, then the agent replays it")
	b.proc.Kill()
	waitStatus(t, ctl, p1ID, "DOWN")
	b.start()
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "endpoints replayed after the bagpipe-bgp restart")
	waitStatus(t, ctl, p1ID, "ACTIVE")
	if !strings.Contains(agent.Log(), "bagpipe-bgp restart detected") {
		t.Errorf("the agent did not log the bagpipe-bgp restart")
	}

	t.Log("controller outage: killed, restarted on its data; a port created then is attached")
	ctl.proc.Kill()
	// bagpipe-bgp is left alone: it keeps the port.
	if got, err := b.endpoints(netID); err != nil || len(got) != 1 {
		t.Fatalf("during the outage bagpipe-bgp has %v (%v), want the one port", got, err)
	}
	ctl.start()
	p3 := ctl.create("port", map[string]any{"network_id": netID, "binding:host_id": host})
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1), tap(p3): endpointOf(p3)}, "agent caught up after the controller outage")
	waitStatus(t, ctl, p3["id"].(string), "ACTIVE")

	t.Log("a port moved to another host is detached here")
	if _, err := ctl.cli.Update(context.Background(), "port", p3["id"].(string), map[string]any{"binding:host_id": "node2"}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "moved port detached")
	if strings.Contains(agent.Log(), "level=ERROR") {
		t.Errorf("the agent logged errors:\n%s", agent.Log())
	}

	t.Log("agent restart: it attaches again what bagpipe-bgp already has, without errors")
	if err := agent.Stop(); err != nil {
		t.Fatal(err)
	}
	agent = testenv.StartProcess(t, filepath.Join(bin, "bagpipe-agent"), agentArgs, nil)
	testenv.WaitFor(t, wait, "the restarted agent attaching", func() (bool, error) {
		return strings.Contains(agent.Log(), "port attached"), nil
	})
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "same endpoints after the agent restart")
	p4 := ctl.create("port", map[string]any{"network_id": netID, "binding:host_id": host})
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1), tap(p4): endpointOf(p4)}, "the restarted agent follows the feed")
	waitStatus(t, ctl, p4["id"].(string), "ACTIVE")
	if strings.Contains(agent.Log(), "level=ERROR") || strings.Contains(agent.Log(), "refused") {
		t.Errorf("the restarted agent logged errors:\n%s", agent.Log())
	}

	t.Log("a port deleted while the agent is stopped is detached when it starts")
	if err := agent.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ctl.cli.Delete(context.Background(), "port", p4["id"].(string)); err != nil {
		t.Fatal(err)
	}
	agent = testenv.StartProcess(t, filepath.Join(bin, "bagpipe-agent"), agentArgs, nil)
	waitEndpoints(t, b, netID, map[string]string{tap(p1): endpointOf(p1)}, "the stale endpoint detached by the restarted agent")
	if !strings.Contains(agent.Log(), "endpoints of a port this host no longer has") {
		t.Errorf("the restarted agent did not log the stale endpoint")
	}
	if strings.Contains(agent.Log(), "level=ERROR") || strings.Contains(agent.Log(), "refused") {
		t.Errorf("the restarted agent logged errors:\n%s", agent.Log())
	}
}

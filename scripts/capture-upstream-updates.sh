#!/bin/bash
# Capture the exact BGP messages the upstream (Python) bagpipe-bgp daemon
# sends, as test vectors for internal/codec.
#
# Runs, all on loopback:
#   - bgp-capture-listener.py on 127.0.0.1:$BGP_PORT (our passive peer; it
#     advertises RTC routes for 64512:100 and 64512:200 so that upstream,
#     which uses RT Constraint, sends us its VPN routes),
#   - upstream bagpipe-bgp (Debian python3-networking-bagpipe, system
#     /usr/bin/python3) with dummy dataplane drivers, local_address
#     127.0.0.10, peering with 127.0.0.1:$BGP_PORT, REST API on
#     127.0.0.1:$API_PORT,
#   - tcpdump on lo (second record, written as capture.pcap),
# then drives the REST API (attach/detach) and splits the received UPDATEs
# into one .hex file per case with scripts/upstream-vectors.py.
#
# Re-runnable: everything it starts is stopped by PID on exit.
# Usage: scripts/capture-upstream-updates.sh [OUTDIR]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
outdir=${1:-$here/../internal/codec/testdata/upstream}
BGP_PORT=${BGP_PORT:-11179}
API_PORT=${API_PORT:-18082}
PY=/usr/bin/python3

for tool in "$PY" /usr/bin/bagpipe-bgp tcpdump curl; do
	command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

work=$(mktemp -d /tmp/bagpipe-capture.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

for port in "$BGP_PORT" "$API_PORT"; do
	if ss -ltnH "sport = :$port" | grep -q .; then
		echo "port $port already in use; set BGP_PORT/API_PORT" >&2
		exit 1
	fi
done

cat >"$work/bgp.conf" <<EOF
[BGP]
local_address = 127.0.0.10
peers = 127.0.0.1
my_as = 64512
enable_rtc = True
bgp_port = $BGP_PORT

[API]
host = 127.0.0.1
port = $API_PORT

[DATAPLANE_DRIVER_IPVPN]
dataplane_driver = dummy

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = dummy
EOF

log=$work/session.log
: >"$log"

tcpdump -i lo -U -s 0 -w "$work/capture.pcap" "tcp port $BGP_PORT" \
	>"$work/tcpdump.out" 2>&1 &
pids+=($!)
"$PY" "$here/bgp-capture-listener.py" --port "$BGP_PORT" \
	--rtc 64512:100 --rtc 64512:200 --rtc 64512:300 --rtc 64512:400 --out "$log" >"$work/listener.out" 2>&1 &
pids+=($!)
sleep 1 # let tcpdump and the listener bind before upstream connects
"$PY" /usr/bin/bagpipe-bgp --config-file "$work/bgp.conf" \
	--log-file "$work/bagpipe-bgp.log" >"$work/bagpipe-bgp.out" 2>&1 &
pids+=($!)

wait_for() { # wait_for <description> <command...>: poll up to 60 s
	local what=$1 i
	shift
	for i in $(seq 600); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	echo "timed out waiting for $what; logs in $work:" >&2
	tail -n 20 "$work/bagpipe-bgp.log" "$log" >&2 || true
	trap - EXIT
	cleanup_keep_logs
	exit 1
}
cleanup_keep_logs() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	echo "(kept $work)" >&2
}

wait_for "BGP session" grep -q '^# ESTABLISHED' "$log"
wait_for "REST API" curl -sf "http://127.0.0.1:$API_PORT/ping" -o /dev/null
sleep 1 # upstream processes our RTC routes

n_updates() { grep -c ' UPDATE ' "$log" || true; }
updates_at_least() { [ "$(n_updates)" -ge "$1" ]; }

# step <name> <attach|detach> <expected UPDATE count> <json body>
step() {
	local name=$1 op=$2 want=$3 body=$4 before code
	before=$(n_updates)
	echo "# STEP $name $op $body" >>"$log"
	code=$(curl -s -o "$work/resp" -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' -d "$body" \
		"http://127.0.0.1:$API_PORT/${op}_localport")
	if [ "$code" != 200 ]; then
		echo "$op $name: HTTP $code: $(cat "$work/resp")" >&2
	fi
	wait_for "$want UPDATE(s) after $name" \
		updates_at_least $((before + want))
	sleep 1 # catch any unexpected extra message
}

evpn='"vpn_type": "evpn", "vpn_instance_id": "evpn-test", "local_port": {"linuxif": "tap-test"}'
evpn_rt='"import_rt": ["64512:100"], "export_rt": ["64512:100"], "vni": 1001'
ipvpn='"vpn_type": "ipvpn", "vpn_instance_id": "ipvpn-test", "local_port": {"linuxif": "tap-ip"}, "mac_address": "52:54:00:aa:bb:cc", "ip_address": "10.1.0.5"'

step evpn-attach-macip attach 3 \
	"{$evpn, $evpn_rt, \"mac_address\": \"52:54:00:12:34:56\", \"ip_address\": \"10.0.0.5\"}"
step evpn-attach-maconly attach 1 \
	"{$evpn, $evpn_rt, \"mac_address\": \"52:54:00:12:34:57\"}"
step evpn-attach-lp200-lb3 attach 1 \
	"{$evpn, $evpn_rt, \"mac_address\": \"52:54:00:12:34:58\", \"ip_address\": \"10.0.0.6\", \"local_pref\": 200, \"lb_consistent_hash_order\": 3}"
step ipvpn-attach attach 2 \
	"{$ipvpn, \"gateway_ip\": \"10.1.0.1\", \"import_rt\": [\"64512:200\"], \"export_rt\": [\"64512:200\"]}"
step ipvpn-detach detach 2 "{$ipvpn}"
step evpn-detach-maconly detach 1 \
	"{$evpn, \"mac_address\": \"52:54:00:12:34:57\"}"
step evpn-detach-lp200-lb3 detach 1 \
	"{$evpn, \"mac_address\": \"52:54:00:12:34:58\", \"ip_address\": \"10.0.0.6\"}"
step evpn-detach-macip-last detach 3 \
	"{$evpn, \"mac_address\": \"52:54:00:12:34:56\", \"ip_address\": \"10.0.0.5\"}"

# More cases, after the ones above so that their RDs/labels do not move.
iplb='"vpn_type": "ipvpn", "vpn_instance_id": "ipvpn-lb", "local_port": {"linuxif": "tap-lb"}, "mac_address": "52:54:00:aa:bb:dd", "gateway_ip": "10.2.0.1", "import_rt": ["64512:300"], "export_rt": ["64512:300"]'
step ipvpn-attach-lp200-lb3 attach 2 \
	"{$iplb, \"ip_address\": \"10.2.0.5\", \"local_pref\": 200, \"lb_consistent_hash_order\": 3}"
step ipvpn-attach-prefix attach 1 \
	"{$iplb, \"ip_address\": \"20.1.0.0/24\", \"advertise_subnet\": true, \"local_pref\": 150}"
evauto='"vpn_type": "evpn", "vpn_instance_id": "evpn-auto", "local_port": {"linuxif": "tap-auto"}, "mac_address": "52:54:00:12:34:60", "ip_address": "10.3.0.5", "import_rt": ["64512:400"], "export_rt": ["64512:400"]'
step evpn-attach-autovni attach 3 "{$evauto}"
step evpn-reattach-lp300 attach 1 "{$evauto, \"local_pref\": 300}"

mkdir -p "$outdir"
"$PY" "$here/upstream-vectors.py" extract "$log" "$outdir"
cp "$log" "$outdir/session.log"
sleep 1 # let tcpdump flush the last segments
cp "$work/capture.pcap" "$outdir/capture.pcap"
"$PY" "$here/upstream-vectors.py" decode "$outdir"/*.hex >"$outdir/decoded.txt"
echo "vectors written to $outdir"

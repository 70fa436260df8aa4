#!/usr/bin/env bash
# otscope against nmap on the same simulated lab (otscope-lab, loopback only).
#
# Starts LAB_COUNT simulated devices (default 30: Modbus, S7comm, EtherNet/IP tcp+udp, BACnet, Fox,
# FINS in turn) on 127.131.0.1 onwards, scans them with otscope and with
#   nmap -sT -sU -sV -Pn -p T:502,102,44818,1911,U:44818,47808,9600 --script <the ICS NSE scripts>
# and prints the wall time of each, their ratio, and per device what each identified: which of the
# device's identity fields (from the lab's ledger) each tool reported.
#
# Run: benches/nmap_compare.sh            (needs nmap and python3; root for nmap -sU)
# Knobs: LAB_COUNT (1-254), NMAP_HOST_TIMEOUT (default 300s), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${LAB_COUNT:-30}
FIRST=127.131.0.1
HOST_TIMEOUT=${NMAP_HOST_TIMEOUT:-300s}
if ! [[ $COUNT =~ ^[0-9]+$ ]] || ((COUNT < 1 || COUNT > 254)); then
    echo "LAB_COUNT must be 1-254" >&2
    exit 2
fi
LAST=127.131.0.$COUNT
command -v nmap >/dev/null || { echo "nmap is not installed" >&2; exit 2; }

# otscope-lab is the workspace's dev-only crate in lab/ (never part of the otscope binary).
cargo build --release --quiet -p otscope -p otscope-lab --bins
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d)
LAB_PID=
cleanup() {
    if [[ -n $LAB_PID ]]; then kill "$LAB_PID" 2>/dev/null || true; wait "$LAB_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN/otscope-lab" --first "$FIRST" --count "$COUNT" --ledger "$WORK/lab.csv" --duration 30m >"$WORK/lab.log" 2>&1 &
LAB_PID=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/lab.log" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/lab.log" || { cat "$WORK/lab.log" >&2; exit 1; }
cat "$WORK/lab.log"

now() { date +%s.%N; }

t0=$(now)
"$BIN/otscope" scan --targets "$WORK/lab.csv" --no-db --quiet \
    --ports 502,102,44818,1911,44818/udp,47808/udp,9600/udp \
    --rate 0 --host-interval 0s --per-host 4 --connect-timeout 1s --read-timeout 1s \
    --out "$WORK/otscope.jsonl" >"$WORK/otscope.log" 2>&1
t1=$(now)
nmap -sT -sU -sV -Pn -n -p T:502,102,44818,1911,U:44818,47808,9600 \
    --script modbus-discover,s7-info,enip-info,bacnet-info,fox-info,omron-info \
    --host-timeout "$HOST_TIMEOUT" -oX "$WORK/nmap.xml" "$FIRST-$COUNT" >"$WORK/nmap.log" 2>&1
t2=$(now)

python3 - "$WORK/lab.csv" "$WORK/otscope.jsonl" "$WORK/nmap.xml" "$t0" "$t1" "$t2" <<'PY'
import csv, json, sys, xml.etree.ElementTree as ET
from collections import defaultdict

ledger, ots_path, nmap_path, t0, t1, t2 = sys.argv[1:]
t_ots, t_nmap = float(t1) - float(t0), float(t2) - float(t1)

# Ground truth: the identity fields each lab device reports (contact column: "...; k=v;k=v").
devices = []
for row in csv.DictReader(open(ledger, encoding="utf-8")):
    fields = dict(kv.split("=", 1) for kv in row["contact"].split("; ", 1)[1].split(";"))
    devices.append((row["targets"], row["sector"], fields))

def strings(v, out):
    if isinstance(v, dict):
        for x in v.values(): strings(x, out)
    elif isinstance(v, list):
        for x in v: strings(x, out)
    elif v is not None:
        out.append(str(v))
    return out

ots_text, ots_proto = defaultdict(list), defaultdict(set)
for line in open(ots_path, encoding="utf-8"):
    f = json.loads(line)
    if f.get("ics"):
        ots_proto[f["ip"]].add(f"{f['protocol']}/{f['port']}/{f['transport']}")
        strings({k: f.get(k) for k in ("vendor", "product", "version", "attributes")}, ots_text[f["ip"]])

nm_text, nm_proto = defaultdict(list), defaultdict(set)
for host in ET.parse(nmap_path).getroot().iter("host"):
    ip = host.find("address").get("addr")
    for port in host.iter("port"):
        if port.find("state").get("state") != "open":
            continue
        svc = port.find("service")
        scripts = [s for s in port.iter("script") if not s.get("output", "").lstrip().startswith("ERROR")]
        for s in scripts:
            if s.get("id") != "fingerprint-strings":
                nm_proto[ip].add(f"{s.get('id')}/{port.get('portid')}/{port.get('protocol')}")
        for s in scripts:
            nm_text[ip].append(s.get("output", ""))
        if svc is not None:
            nm_text[ip].extend(svc.get(a, "") for a in ("product", "version", "extrainfo"))

def found(texts, value):
    return any(value.strip().lower() in t.lower() for t in texts)

print(f"\n{'device':<14} {'kind':<7} {'otscope (fields found)':<40} {'nmap (fields found)':<40} ok")
all_ok, ots_ids, nm_ids = True, 0, 0
for ip, kind, fields in devices:
    o = [k for k, v in fields.items() if found(ots_text[ip], v)]
    n = [k for k, v in fields.items() if found(nm_text[ip], v)]
    ok = set(n) <= set(o) and len(o) > 0
    all_ok &= ok
    ots_ids += bool(o)
    nm_ids += bool(n)
    ocol = f"{','.join(sorted(ots_proto[ip])) or '-'} {len(o)}/{len(fields)} {','.join(o)}"
    ncol = f"{','.join(sorted(nm_proto[ip])) or '-'} {len(n)}/{len(fields)} {','.join(n)}"
    print(f"{ip:<14} {kind:<7} {ocol:<40} {ncol:<40} {'yes' if ok else 'NO'}")
print(f"\ndevices: {len(devices)}; identified by otscope: {ots_ids}, by nmap: {nm_ids}")
print(f"wall time: otscope {t_ots:.2f}s, nmap {t_nmap:.2f}s, nmap/otscope {t_nmap / t_ots:.1f}x")
print(f"otscope identifies at least nmap's fields on every device: {'yes' if all_ok else 'NO'}")
sys.exit(0 if all_ok else 1)
PY

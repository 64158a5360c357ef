#!/usr/bin/env bash
# Eligibility through each kind of mutuelle, measured from outside with
# h2load (Debian's nghttp2-client) against `passerelle dev --plaintext`: the
# method of issue 15's "before" figures (docs/PERFORMANCE.md, "HTTP
# partners"). h2load counts HTTP statuses, and gRPC errors travel as HTTP
# 200: check the paths answer (`passerelle eligibility ...`) before trusting
# a figure.
#   bench/h2load/eligibility.sh PASSERELLE_BINARY [SECONDS]
set -euo pipefail
bin=$1
secs=${2:-5}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
# One CheckEligibilityRequest per path, framed for gRPC (a zero byte, the
# length, the protobuf: scheme_id = 1, beneficiary_id = 2, date_of_care = 3,
# currency = 6).
python3 - "$dir" <<'PY'
import struct, sys
def s(field, v):
    b = v.encode()
    return bytes([(field << 3) | 2, len(b)]) + b
for name, scheme, who in [("rules", "CNSS", "TG-1001"), ("grpc", "INAM", "TG-2001"),
                          ("fhir", "CNSS", "TG-3001"), ("xml", "INAM", "TG-4001")]:
    msg = s(1, scheme) + s(2, who) + s(3, "2026-11-20") + s(6, "XOF")
    open(f"{sys.argv[1]}/{name}.bin", "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
PY
"$bin" dev --plaintext --data-dir "$dir/data" --listen 127.0.0.1:0 >"$dir/out" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -qoE "127.0.0.1:[0-9]+" "$dir/out" && break; sleep 0.1; done
addr=$(grep -oE "127.0.0.1:[0-9]+" "$dir/out" | head -1)
url="http://$addr/passerelle.scheme.v1.SchemeService/CheckEligibility"
for p in rules grpc fhir xml; do
    args=(-c 8 -m 8 -H 'content-type: application/grpc' -H 'te: trailers' -d "$dir/$p.bin")
    h2load -n 2000 "${args[@]}" "$url" >/dev/null 2>&1
    echo "$p: $(h2load -D "$secs" "${args[@]}" "$url" 2>&1 | grep -E '^finished in|^requests:' | tr '\n' ' ')"
done

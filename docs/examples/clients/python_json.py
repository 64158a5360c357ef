"""passerelle's JSON door from Python with requests: eligibility, a claim,
and a modified resend whose error details name the reason.

    pip install requests
    PASSERELLE_URL=https://localhost:50051 PASSERELLE_CERTS=.passerelle/certs \
        python python_json.py
"""
import os

import requests

URL = os.environ.get("PASSERELLE_URL", "https://localhost:50051")
CERTS = os.environ.get("PASSERELLE_CERTS", ".passerelle/certs")

session = requests.Session()
CA = f"{CERTS}/ca.crt"  # the broker's CA
# The scheme's identity is its client certificate: no token, no header.
IDENTITY = (f"{CERTS}/scheme-CNSS.crt", f"{CERTS}/scheme-CNSS.key")


def call(method, body):
    """POST /<package>.<Service>/<Method> with a JSON body."""
    # verify= on each call: a REQUESTS_CA_BUNDLE in the environment would
    # override a session's.
    r = session.post(f"{URL}/passerelle.scheme.v1.SchemeService/{method}",
                     json=body, verify=CA, cert=IDENTITY, timeout=30)
    return r.status_code, r.json()


status, e = call("CheckEligibility",
                 {"schemeId": "CNSS", "beneficiaryId": "TG-1001", "dateOfCare": "2026-11-20"})
assert status == 200, e
print(f"eligibility TG-1001: covered={e['covered']} by {e['mutuelleId']} "
      f"(product {e['product']['productId']})")

claim = {
    "schemeId": "CNSS", "claimId": "EX-PYJSON-1", "providerId": "CHU-SYLVANUS-OLYMPIO",
    "invoiceNumber": "F-EX-PYJSON-1", "payee": "PAYEE_PROVIDER",
    "beneficiaryId": "TG-1001", "dateOfCare": "2026-11-20", "currency": "XOF",
    # Amounts: whole numbers in the currency's minor unit (F CFA has none:
    # 5000 is 5,000 F CFA); 64-bit integers come back as strings.
    "lines": [{"actCode": "CS-GEN", "careCategory": "CARE_CATEGORY_CONSULTATION",
               "quantity": 1, "billed": 5000, "tariffBase": 5000, "schemeShare": 4000,
               "schemeOutcome": "SCHEME_LINE_OUTCOME_COVERED"}],
}
status, r = call("CoordinateClaim", claim)
assert status == 200, r
print(f"claim {r['claimId']}: {r['state']}")
for line in r["lines"]:
    b, s, m, p = (int(line[k]) for k in ("billed", "schemeShare", "mutuelleShare", "patientShare"))
    assert s + m + p == b
    print(f"  line {line['sequence']} {line['actCode']}: B {b} = S {s} + M {m} + P {p}")

# Same claim id, other content: refused. The error is JSON; each detail has
# its type and, under "debug", its content as JSON.
claim["lines"][0]["billed"] = 6000
status, err = call("CoordinateClaim", claim)
reasons = [d["debug"]["reason"] for d in err.get("details", []) if d["type"] == "google.rpc.ErrorInfo"]
print(f"modified resend: HTTP {status} {err['code']} {' '.join(reasons)}")

#!/usr/bin/env bash
# passerelle's JSON door with curl: eligibility, a claim, and a modified
# resend whose error names its reason. Any language that can POST JSON over
# HTTPS with a client certificate can do the same.
#
#   PASSERELLE_URL    the broker (default https://localhost:50051, `passerelle dev`)
#   PASSERELLE_CERTS  the dev certificates (default .passerelle/certs)
set -euo pipefail
URL="${PASSERELLE_URL:-https://localhost:50051}"
CERTS="${PASSERELLE_CERTS:-.passerelle/certs}"

# Every call: POST /<package>.<Service>/<Method>, a JSON body, and the
# scheme's own certificate (its identity: no token, no header).
call() {
    curl -sS --cacert "$CERTS/ca.crt" \
        --cert "$CERTS/scheme-CNSS.crt" --key "$CERTS/scheme-CNSS.key" \
        -H 'Content-Type: application/json' \
        -w '\nHTTP %{http_code}\n' \
        -d "$2" "$URL/passerelle.scheme.v1.SchemeService/$1"
}

echo "== CheckEligibility"
call CheckEligibility '{"schemeId": "CNSS", "beneficiaryId": "TG-1001", "dateOfCare": "2026-11-20"}'

# Amounts are whole numbers in the currency's minor unit (F CFA has none:
# 5000 is 5,000 F CFA); 64-bit integers may
# be sent as numbers or strings and always come back as strings.
CLAIM='{
  "schemeId": "CNSS", "claimId": "EX-CURL-1", "providerId": "CHU-SYLVANUS-OLYMPIO",
  "invoiceNumber": "F-EX-CURL-1", "payee": "PAYEE_PROVIDER",
  "beneficiaryId": "TG-1001", "dateOfCare": "2026-11-20", "currency": "XOF",
  "lines": [{"actCode": "CS-GEN", "careCategory": "CARE_CATEGORY_CONSULTATION",
             "quantity": 1, "billed": "5000", "tariffBase": "5000", "schemeShare": "4000",
             "schemeOutcome": "SCHEME_LINE_OUTCOME_COVERED"}]
}'
echo "== CoordinateClaim"
call CoordinateClaim "$CLAIM"

# The same claim id with another amount: refused (HTTP 409, code
# already_exists); details[].debug is the google.rpc.ErrorInfo as JSON, with
# reason MODIFIED_REQUEST. Sending the same content again is safe: the
# stored answer comes back, never a second payment.
echo "== CoordinateClaim, modified"
call CoordinateClaim "${CLAIM/\"billed\": \"5000\"/\"billed\": \"6000\"}"

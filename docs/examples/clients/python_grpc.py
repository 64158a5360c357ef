"""passerelle over gRPC from Python: eligibility, a claim, and a modified
resend whose google.rpc details are read.

    pip install grpcio grpcio-tools grpcio-status googleapis-common-protos
    # Python classes from the contracts (once, from the repository's root):
    mkdir -p gen
    python -m grpc_tools.protoc -I proto --python_out=gen --grpc_python_out=gen \
        proto/passerelle/common/v1/common.proto proto/passerelle/scheme/v1/scheme.proto
    PYTHONPATH=gen PASSERELLE_ADDR=localhost:50051 PASSERELLE_CERTS=.passerelle/certs \
        python python_grpc.py
"""
import os

import grpc
from google.rpc import error_details_pb2  # googleapis-common-protos
from grpc_status import rpc_status  # grpcio-status

from passerelle.common.v1 import common_pb2
from passerelle.scheme.v1 import scheme_pb2, scheme_pb2_grpc

ADDR = os.environ.get("PASSERELLE_ADDR", "localhost:50051")
CERTS = os.environ.get("PASSERELLE_CERTS", ".passerelle/certs")


def read(name):
    with open(f"{CERTS}/{name}", "rb") as f:
        return f.read()


# Mutual TLS: the broker's CA, and the scheme's certificate as its identity.
credentials = grpc.ssl_channel_credentials(
    root_certificates=read("ca.crt"),
    private_key=read("scheme-CNSS.key"),
    certificate_chain=read("scheme-CNSS.crt"),
)
# The dev certificate names localhost (and 127.0.0.1).
channel = grpc.secure_channel(ADDR, credentials, options=[("grpc.ssl_target_name_override", "localhost")])
scheme = scheme_pb2_grpc.SchemeServiceStub(channel)

e = scheme.CheckEligibility(scheme_pb2.CheckEligibilityRequest(
    scheme_id="CNSS", beneficiary_id="TG-1001", date_of_care="2026-11-20"), timeout=30)
print(f"eligibility TG-1001: covered={e.covered} by {e.mutuelle_id} (product {e.product.product_id})")

claim = scheme_pb2.CoordinateClaimRequest(
    scheme_id="CNSS", claim_id="EX-PYGRPC-1", provider_id="CHU-SYLVANUS-OLYMPIO",
    invoice_number="F-EX-PYGRPC-1", payee=common_pb2.PAYEE_PROVIDER,
    beneficiary_id="TG-1001", date_of_care="2026-11-20", currency="XOF",
    lines=[scheme_pb2.ClaimLine(act_code="CS-GEN", care_category=common_pb2.CARE_CATEGORY_CONSULTATION,
                                quantity=1, billed=5000, tariff_base=5000, scheme_share=4000,
                                scheme_outcome=common_pb2.SCHEME_LINE_OUTCOME_COVERED)],
)
r = scheme.CoordinateClaim(claim, timeout=30)
print(f"claim {r.claim_id}: {scheme_pb2.ClaimState.Name(r.state)}")
for line in r.lines:
    assert line.scheme_share + line.mutuelle_share + line.patient_share == line.billed
    print(f"  line {line.sequence} {line.act_code}: B {line.billed} = S {line.scheme_share}"
          f" + M {line.mutuelle_share} + P {line.patient_share}")

claim.lines[0].billed = 6000
try:
    scheme.CoordinateClaim(claim, timeout=30)
except grpc.RpcError as err:
    # The google.rpc.Status in the trailers: its details are Any messages.
    status = rpc_status.from_call(err)
    reasons = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reasons.append(info.reason)
    print(f"modified resend: {err.code().name} {' '.join(reasons)}")

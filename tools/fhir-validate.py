#!/usr/bin/env python3
"""Validates FHIR R4 (4.0.1) JSON resources against the R4 definitions.

Usage: fhir-validate.py FILE_OR_DIR...

Each file holds one resource. It is parsed with fhir.resources 6.1.0, the
R4 (4.0.1) models generated from HL7's StructureDefinitions: required
elements (1..1, 1..*), element types and primitive formats (a FHIR string
may not be empty, dates and codes have their patterns), choice types, and no
element FHIR does not define. Contained resources are checked as their own
type. Exit status 1 when a resource does not validate, each error printed
with its file and element path.

Installed by .ci/run into a virtual environment:
    pip install "fhir.resources==6.1.0" "pydantic[email]>=1.10,<2"
"""

import json
import sys
from pathlib import Path

import fhir.resources
from fhir.resources import construct_fhir_element


def files(args):
    for a in args:
        p = Path(a)
        if p.is_dir():
            yield from sorted(p.glob("*.json"))
        else:
            yield p


def main(args):
    if fhir.resources.__fhir_version__ != "4.0.1":
        print(f"fhir.resources models FHIR {fhir.resources.__fhir_version__}, not R4 4.0.1")
        return 2
    failed = 0
    checked = 0
    for f in files(args):
        data = json.loads(f.read_text(encoding="utf-8"))
        rt = data.get("resourceType")
        try:
            construct_fhir_element(rt, data)
            checked += 1
        except Exception as e:  # pydantic's ValidationError, or LookupError
            failed += 1
            print(f"{f.name}: {rt} is not valid FHIR R4:")
            for line in str(e).splitlines():
                print(f"  {line}")
    print(f"{checked} valid, {failed} invalid")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

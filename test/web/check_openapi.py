#!/usr/bin/env python3
"""Checks that an OpenAPI document has the structure of OpenAPI 3.1, for
the parts taskq-web uses: validated with jsonschema (Debian
python3-jsonschema) against openapi_subset.schema.json, a compact JSON
Schema written for taskq (no OpenAPI 3.1 meta-schema is packaged in
Debian), plus checks a schema cannot express: every $ref resolves, every
{param} of a path is declared, operationIds are unique.

Usage: check_openapi.py FILE   (exit 0 when it is fine; the problems otherwise)
"""
import json
import os
import re
import sys

import jsonschema


def main(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "openapi_subset.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]

    schemas = doc.get("components", {}).get("schemas", {})
    for ref in re.findall(r'"\$ref":\s*"([^"]+)"', json.dumps(doc)):
        name = ref.removeprefix("#/components/schemas/")
        if name == ref or name not in schemas:
            problems.append(f"$ref {ref} does not resolve")

    seen = set()
    for path_name, item in doc.get("paths", {}).items():
        wanted = set(re.findall(r"{([^}]+)}", path_name))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            if declared != wanted:
                problems.append(f"{method} {path_name}: path parameters {sorted(declared)} != {sorted(wanted)}")
            if op["operationId"] in seen:
                problems.append(f"operationId {op['operationId']} is used twice")
            seen.add(op["operationId"])

    for p in problems:
        print("openapi:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

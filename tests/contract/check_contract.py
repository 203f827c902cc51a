#!/usr/bin/env python3
"""Checks that the served contract only adds to the upstream contract.

Usage: check_contract.py SERVED UPSTREAM   (each a file path or an http:// URL)

1. SERVED validates as OpenAPI 3.0 (openapi-spec-validator).
2. Every path, method and operationId of UPSTREAM is in SERVED, unchanged.
3. SERVED is UPSTREAM plus additions and narrowing constraints, node by node:
   every key of UPSTREAM is in SERVED; a scalar differs only in text (description,
   summary, the version) or as a tighter bound (minLength up, maxLength down, a
   parameter or body becoming required); a list keeps all of UPSTREAM's items
   (`required`, `security`, `tags`, parameters by name), an `enum` only loses
   items; keys added to an upstream schema are constraints (pattern, bounds,
   enum, anyOf, ...) or new properties, never `nullable`, `type` or
   `additionalProperties`. The one deliberate relaxation is listed in
   RELAXATIONS with its reason.
4. Every success response (2xx, 101, 304) has the same media types and the same
   schema shape (types, formats, properties, required, nullable, items) once
   references are resolved and constraint keywords and texts are set aside:
   a client generated from UPSTREAM reads every answer of SERVED.

Exits 1 and prints every difference otherwise; prints a summary of the
additions when the check passes.
"""

import sys
import urllib.request

import yaml
from openapi_spec_validator import validate

# Text that may differ freely.
TEXT_KEYS = {"description", "summary"}
# Keywords that may be added to an upstream schema: each only narrows it.
NARROWING_KEYS = {
    "pattern", "minLength", "maxLength", "minItems", "maxItems", "minimum", "maximum",
    "enum", "anyOf", "not", "required", "properties", "description", "uniqueItems",
}
LOWER_BOUNDS = {"minLength", "minItems", "minimum"}
UPPER_BOUNDS = {"maxLength", "maxItems", "maximum"}
SUCCESS = {"101", "200", "201", "204", "304"}
# Schema keywords that do not change what a generated client reads.
SHAPE_IGNORED = TEXT_KEYS | NARROWING_KEYS - {"required", "properties"} | {"example"}

# The only places where SERVED is looser than UPSTREAM, and why.
RELAXATIONS = {
    ("paths", "/v1/gateway", "get", "parameters", "query:ticket", "required"):
        "legacy single-device clients connect with ?token= instead of a ticket "
        "(BEHAVIOR.md §17.2 item 8); a ticket is still required when no token is given",
}


def load(location):
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=10) as response:
            return yaml.safe_load(response.read())
    with open(location, encoding="utf-8") as f:
        return yaml.safe_load(f)


def is_schema_context(path):
    """Whether the node at `path` is a schema object."""
    if not path:
        return False
    last = path[-1]
    parent = path[-2] if len(path) > 1 else None
    return (
        last in ("schema", "items", "not")
        or parent in ("properties", "schemas")
        or (isinstance(last, int) and parent in ("allOf", "anyOf", "oneOf"))
    )


def keyed(items, path):
    """Parameters by `in:name`, other lists as they are."""
    if path and path[-1] == "parameters":
        return {f"{p.get('in')}:{p.get('name')}": p for p in items if isinstance(p, dict)}
    return None


def superset(up, served, path, errors):
    """Records in `errors` where `served` is not `up` plus additions."""
    if isinstance(up, dict):
        if not isinstance(served, dict):
            errors.append(f"{'.'.join(map(str, path))}: not an object any more")
            return
        for key, value in up.items():
            if key not in served:
                errors.append(f"{'.'.join(map(str, path + (key,)))}: removed")
                continue
            superset(value, served[key], path + (key,), errors)
        if is_schema_context(path):
            for key in served.keys() - up.keys():
                if key not in NARROWING_KEYS:
                    errors.append(f"{'.'.join(map(str, path + (key,)))}: `{key}` added to an upstream schema")
        return
    if isinstance(up, list):
        superset_list(up, served, path, errors)
        return
    if up == served:
        return
    key = path[-1]
    where = ".".join(map(str, path))
    if key in TEXT_KEYS or path == ("info", "version"):
        return
    if key in LOWER_BOUNDS and isinstance(served, (int, float)) and served >= up:
        return
    if key in UPPER_BOUNDS and isinstance(served, (int, float)) and served <= up:
        return
    if key == "required" and up is False and served is True:
        return
    if path in RELAXATIONS:
        return
    errors.append(f"{where}: {up!r} became {served!r}")


def superset_list(up, served, path, errors):
    where = ".".join(map(str, path))
    if not isinstance(served, list):
        errors.append(f"{where}: not a list any more")
        return
    by_key = keyed(up, path)
    if by_key is not None:
        served_by_key = keyed(served, path)
        for name, param in by_key.items():
            if name not in served_by_key:
                errors.append(f"{where}: parameter {name} removed")
            else:
                superset(param, served_by_key[name], path + (name,), errors)
        return
    key = path[-1]
    if key == "enum":
        extra = [v for v in served if v not in up]
        if extra:
            errors.append(f"{where}: enum gained {extra}")
        return
    if key in ("allOf", "anyOf", "oneOf"):
        if len(up) != len(served):
            errors.append(f"{where}: {len(up)} branches became {len(served)}")
            return
        for i, (a, b) in enumerate(zip(up, served)):
            superset(a, b, path + (i,), errors)
        return
    missing = [v for v in up if v not in served]
    if missing:
        errors.append(f"{where}: lost {missing}")


def resolve(doc, node, seen=()):
    """`node` with every `$ref` replaced by its target (cycles left as refs)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/") and ref not in seen:
            target = doc
            for part in ref[2:].split("/"):
                target = target[part]
            merged = {**resolve(doc, target, seen + (ref,)), **{k: v for k, v in node.items() if k != "$ref"}}
            return resolve(doc, merged, seen + (ref,))
        return {k: resolve(doc, v, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(doc, v, seen) for v in node]
    return node


def shape(schema):
    """What a generated client reads of `schema`."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key in SHAPE_IGNORED:
                continue
            if key == "required" and isinstance(value, list):
                out[key] = sorted(value)
            else:
                out[key] = shape(value)
        return out
    if isinstance(schema, list):
        return [shape(v) for v in schema]
    return schema


def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "head", "patch", "options"):
                yield path, method, op


def check_success_shapes(up_doc, served_doc, errors):
    served_ops = {(p, m): op for p, m, op in operations(served_doc)}
    for path, method, op in operations(up_doc):
        served_op = served_ops.get((path, method))
        if served_op is None:
            errors.append(f"{method.upper()} {path}: operation removed")
            continue
        if served_op.get("operationId") != op.get("operationId"):
            errors.append(f"{method.upper()} {path}: operationId {op.get('operationId')} changed")
        for status, response in op.get("responses", {}).items():
            if str(status) not in SUCCESS:
                continue
            mine = served_op.get("responses", {}).get(status)
            if mine is None:
                errors.append(f"{method.upper()} {path} {status}: success response removed")
                continue
            up_content = resolve(up_doc, response).get("content", {})
            my_content = resolve(served_doc, mine).get("content", {})
            if set(up_content) != set(my_content):
                errors.append(f"{method.upper()} {path} {status}: media types {sorted(up_content)} became {sorted(my_content)}")
                continue
            for media, body in up_content.items():
                if shape(body.get("schema")) != shape(my_content[media].get("schema")):
                    errors.append(f"{method.upper()} {path} {status} {media}: success schema shape changed")


def summary(up_doc, served_doc):
    up_ops = {(p, m) for p, m, _ in operations(up_doc)}
    lines = []
    for path, method, op in operations(served_doc):
        if (path, method) not in up_ops:
            lines.append(f"  new operation {method.upper()} {path} ({op.get('operationId')})")
            continue
        up_statuses = set(map(str, up_doc["paths"][path][method].get("responses", {})))
        added = sorted(set(map(str, op.get("responses", {}))) - up_statuses)
        if added:
            lines.append(f"  {op.get('operationId')}: statuses added {', '.join(added)}")
    return lines


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    served_doc, up_doc = load(argv[1]), load(argv[2])
    validate(served_doc)
    errors = []
    # Served as text/yaml without a charset, which schemathesis reads as Latin-1.
    with open(argv[1], "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.isascii():
                errors.append(f"line {number} is not ASCII (the served file must be)")
    superset(up_doc, served_doc, (), errors)
    check_success_shapes(up_doc, served_doc, errors)
    if errors:
        print(f"{argv[1]} is not {argv[2]} plus additions:")
        for error in errors:
            print(f"  {error}")
        return 1
    print(f"{argv[1]}: valid OpenAPI 3.0; upstream's paths, operation ids and success shapes kept; additions:")
    print("\n".join(summary(up_doc, served_doc)))
    for where, why in RELAXATIONS.items():
        print(f"  relaxed {'.'.join(where)}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env bash
# Syntax and schema check of deploy/: there is no container engine or
# Kubernetes cluster on the machines this project is built on, so the
# compose file and the manifests are validated, never started.
# - compose/compose.yaml against the Compose Specification's JSON schema
#   (taken from the docker-compose 1.29.2 wheel on PyPI, which bundles it);
# - kubernetes/*.yaml with kubernetes-validate (schemas of Kubernetes 1.30).
# Installs what it needs from PyPI into the current Python.
set -euo pipefail
cd "$(dirname "$0")"
python3 -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null \
  || python3 -m pip install --quiet 'kubernetes-validate==1.31.0' jsonschema pyyaml
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps 'docker-compose==1.29.2' -d "$work"
python3 - "$work"/docker_compose-1.29.2-py2.py3-none-any.whl compose/compose.yaml <<'PY'
import json, sys, zipfile, yaml, jsonschema
schema = json.loads(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))
document = yaml.safe_load(open(sys.argv[2]))
jsonschema.validate(document, schema)
print(f"{sys.argv[2]}: valid against the Compose Specification schema")
PY
kubernetes-validate --strict --kubernetes-version 1.30.0 kubernetes/*.yaml

#!/usr/bin/env bash
# The SAM checks of the template, offline (no AWS account or credentials needed):
#   1. `sam validate --lint` (SAM CLI; it lints with cfn-lint);
#   2. the template transformed by the SAM translator (scripts/sam-transform.py) into plain
#      CloudFormation, and cfn-lint on that result.
# The SAM CLI lives in its own venv (.venv-sam, scripts/requirements-sam.txt, installed by
# `scripts/setup.sh --test-tools`): it pins boto3 and packaging versions that checkov's pins
# in .venv exclude. Nothing here builds: `sam validate` reads the template only, and the arm64
# artifacts are built once per run by scripts/build-artifacts.sh, never by `sam build`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sam_venv="$root/.venv-sam"
template="$root/infra/template.yaml"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# `sam validate` needs a Region and credentials to build its clients, and calls nothing with
# them when --lint is given.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-offline} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-offline}
export SAM_CLI_TELEMETRY=0
"$sam_venv/bin/sam" validate --lint --template-file "$template" --region "$AWS_DEFAULT_REGION"
"$sam_venv/bin/python" "$root/scripts/sam-transform.py" "$template" "$out/template.json"
"$sam_venv/bin/cfn-lint" "$out/template.json"
echo "sam validate --lint: valid; the translated template: cfn-lint found no errors, no warnings"

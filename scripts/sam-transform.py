"""Transforms the SAM template into plain CloudFormation with the SAM translator
(aws-sam-translator, the library `sam deploy` and CloudFormation's transform use), offline.

Usage: python sam-transform.py TEMPLATE OUTPUT.json

Each function's local CodeUri (its package in the workspace) becomes the S3 location of its
artifact, as `sam package` rewrites it after uploading target/lambda/<function>/bootstrap.zip
(the translator accepts only S3 code locations); nothing is uploaded.

The template names its roles itself (no SAM policy templates or managed policy names), so the
translator needs no IAM lookup: the managed policy loader is one that knows no policy, and a
template that asked for one would fail here instead of calling AWS.
"""

import json
import sys

from samtranslator.parser.parser import Parser
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The translator's managed policy loader, offline: it knows no managed policy."""

    def load(self):
        return {}


def main():
    if len(sys.argv) != 3:
        print("usage: sam-transform.py TEMPLATE OUTPUT.json", file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        code = properties.get("CodeUri")
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(code, str) and not code.startswith("s3://"):
            function = code.rstrip("/").rsplit("/", 1)[-1]
            properties["CodeUri"] = f"s3://secret-rotation-artifacts/{function}/bootstrap.zip"
    # The defaults of every parameter; the pseudo parameters get the translator's placeholders.
    plain = transform(template, {}, NoManagedPolicies(), Parser())
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(plain, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

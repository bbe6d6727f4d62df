"""Write every deployment file derived from the app: ``python -m deploy.generate [--check]``.

Run it after adding or changing a function, a route, a call to AWS, a stage,
or anything in ``deploy/``; ``--check`` writes nothing and exits 1 when a file
differs (the tests run it). What it writes, and from what:

* ``.chalice/policy-<stage>-<function>.json``: each function's own policy
  (:mod:`deploy.policies`), and ``.chalice/policy-<stage>.json``, the stage's
  fallback (logs only) for a function this command has not seen yet; the
  ``iam_policy_file`` entries naming them in ``.chalice/config.json`` (the rest
  of that file is yours); policy files of functions that are gone are deleted;
* ``deploy/cloudformation.json``: every resource without a ``Type`` (the
  overrides of what ``chalice package`` writes, :mod:`deploy.templates`), every
  log group, metric filter, alarm and dashboard (:mod:`deploy.observability`),
  their parameters, and the stages ``StageName`` allows; the table, the queues
  and the other parameters and outputs are written by hand;
* ``deploy/terraform/switchboard_override.tf.json`` and
  ``deploy/terraform/switchboard_observability.tf.json``, whole.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy import observability, operations, policies, project, templates

ROOT = project.PROJECT
CHALICE_DIR = ROOT / ".chalice"
CLOUDFORMATION = ROOT / "deploy" / "cloudformation.json"
TERRAFORM_OVERRIDE = ROOT / "deploy" / "terraform" / "switchboard_override.tf.json"
TERRAFORM_OBSERVABILITY = ROOT / "deploy" / "terraform" / "switchboard_observability.tf.json"
GENERATED_TYPES = ("AWS::Logs::LogGroup", "AWS::Logs::MetricFilter", "AWS::CloudWatch::Alarm",
                   "AWS::CloudWatch::Dashboard")
"""Resource types of the merge template this command owns (besides the typeless overrides)."""


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def wanted_files() -> dict[Path, str]:
    """Every generated file's path and content."""
    stages = project.every_stage()
    code = operations.read()
    files: dict[Path, str] = {}
    config = json.loads((CHALICE_DIR / "config.json").read_text())
    for stage in stages:
        entry = config["stages"][stage.name]
        entry["iam_policy_file"] = policies.fallback_file(stage)
        files[CHALICE_DIR / policies.fallback_file(stage)] = render(
            policies.fallback_document(stage))
        named = entry.setdefault("lambda_functions", {})
        for name in list(named):
            if name not in {f.name for f in stage.functions}:
                named[name].pop("iam_policy_file", None)
                if not named[name]:
                    del named[name]
        for function in stage.functions:
            named.setdefault(function.name, {})["iam_policy_file"] = policies.policy_file(
                stage, function)
            files[CHALICE_DIR / policies.policy_file(stage, function)] = render(
                policies.document(stage, function, code=code))
    files[CHALICE_DIR / "config.json"] = render(config)
    files[CLOUDFORMATION] = render(merge_template(
        json.loads(CLOUDFORMATION.read_text()), stages, code))
    files[TERRAFORM_OVERRIDE] = render(templates.terraform(stages, code))
    files[TERRAFORM_OBSERVABILITY] = render(observability.terraform())
    return files


def merge_template(template: Mapping[str, Any], stages: list[project.Stage],
                   code: operations.Code) -> dict[str, Any]:
    """``template`` with every generated part replaced by what the app derives now."""
    merged: dict[str, Any] = json.loads(json.dumps(template))
    resources = {
        name: resource for name, resource in merged.get("Resources", {}).items()
        if "Type" in resource and resource["Type"] not in GENERATED_TYPES
    }
    resources.update(templates.cloudformation(stages, code))
    resources.update(observability.cloudformation_resources())
    merged["Resources"] = resources
    parameters = merged.setdefault("Parameters", {})
    parameters.update(observability.cloudformation_parameters())
    parameters.setdefault("StageName", {})["AllowedValues"] = [s.name for s in stages]
    merged.setdefault("Conditions", {}).update(observability.CONDITIONS)
    merged.setdefault("Outputs", {}).update(observability.OUTPUTS)
    return merged


def stale_files(wanted: Mapping[Path, str]) -> list[Path]:
    """Policy files no stage names any more."""
    return sorted(path for path in CHALICE_DIR.glob("policy-*.json") if path not in wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.generate", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any generated file differs from what "
                        "the app derives")
    args = parser.parse_args(argv)
    wanted = wanted_files()
    differing = [path for path, text in wanted.items()
                 if not path.exists() or path.read_text() != text]
    stale = stale_files(wanted)
    if args.check:
        for path in differing:
            print(f"{path.relative_to(ROOT)} differs from what `python -m deploy.generate` "
                  "writes")
        for path in stale:
            print(f"{path.relative_to(ROOT)} belongs to no function: "
                  "`python -m deploy.generate` deletes it")
        return 1 if differing or stale else 0
    for path in differing:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        path.unlink()
        print(f"deleted {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the Terraform roots ask of Terraform matches what they use."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lower_bound(text: str) -> tuple[int, ...]:
    found = re.search(r'required_version\s*=\s*">=\s*([\d.]+)"', text)
    assert found, "a root states the Terraform it needs"
    return tuple(int(p) for p in found.group(1).split("."))


def test_roots_locking_state_with_a_lockfile_require_terraform_1_10():
    """The S3 backend's `use_lockfile` (S3-native state locking) exists from Terraform 1.10
    (Terraform docs, language/backend/s3: "use_lockfile ... Terraform v1.10")."""
    roots = [p for p in [*ROOT.glob("groups/*/main.tf"), *ROOT.glob("edge/*/main.tf")]
             if "use_lockfile" in p.read_text()]
    assert roots
    for path in roots:
        assert _lower_bound(path.read_text()) >= (1, 10), path

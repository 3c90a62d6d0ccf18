"""The preflight reads the world, changes nothing, and turns AWS's refusals into clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rotator.config import Project
from rotator.errors import InputError
from rotator.session import Session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(emulator, tmp_path, monkeypatch):
    env = tmp_path / "env.yaml"
    env.write_text(yaml.safe_dump({
        "name": "test", "aws": {"endpoint_url": emulator.url,
                                "credentials": {"access_key_id": "test",
                                                "secret_access_key": "test"}},
        "state": {"path": str(tmp_path / "state")},
    }))
    monkeypatch.setenv("ROTATOR_ENV", str(env))
    return Session.open(Project(ROOT), "prd-cn", None)


def test_access_denied_on_describe_images_names_the_call_and_the_credentials(emulator, session):
    """DescribeImages answering AccessDenied (403: the credentials lack ec2:DescribeImages,
    AWS EC2 API reference, "Error codes") is bad set-up, not a crash; nothing changed."""
    session.infra.validate = None  # Terraform's verdict is not what this test is about
    emulator.add_fault("ec2:DescribeImages", "AccessDenied", status=403)
    with pytest.raises(InputError, match=r"group.yaml: aws.credentials: ec2:DescribeImages .*AccessDenied"):
        session.preflight("ami-0123456789abcdef0")

"""One AWS emulator per test session; each test starts with no faults,
health overrides or counted calls (resources persist: tests use unique names)."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config

from rotator.sandbox.aws import AwsEmulator

REGION = "cn-north-1"


@pytest.fixture(scope="session")
def emulator():
    emu = AwsEmulator().start()
    emu.warm(REGION)
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _clean(emulator):
    emulator.clear_faults()
    emulator.reset_calls()
    emulator.clear_instance_health()
    yield
    emulator.clear_faults()


@pytest.fixture
def client(emulator):
    """boto3 clients against the emulator, standard retries: up to 2 retries (3 calls)."""

    def make(service: str, region: str = REGION, retries: dict | None = None, **config):
        retry = {"mode": "standard", "max_attempts": 2} if retries is None else {"mode": "standard", **retries}
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=emulator.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries=retry, **config),
        )

    return make


@pytest.fixture
def unique():
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"

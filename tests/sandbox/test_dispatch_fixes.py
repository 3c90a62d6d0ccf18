"""moto's per-request lookups are made once, and still find what they found."""

from __future__ import annotations


def test_moto_lists_its_modules_and_response_methods_once(emulator):
    emulator.client("ec2", "cn-north-1").describe_vpcs()  # moto is loaded and patched
    from moto import backends
    from moto.core import responses
    from moto.ec2.responses import EC2Response

    assert backends.list_of_moto_modules() is backends.list_of_moto_modules()
    assert {"ec2", "elb", "route53"} <= set(backends.list_of_moto_modules())
    names = responses.method_names_from_class(EC2Response)
    assert names is responses.method_names_from_class(EC2Response)
    assert "describe_instances" in names and "run_instances" in names

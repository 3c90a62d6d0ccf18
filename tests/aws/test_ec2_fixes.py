"""EC2 calls the real provider retries must be as idempotent as AWS makes them."""

from __future__ import annotations


def test_a_retried_create_nat_gateway_returns_the_same_gateway(client):
    ec2 = client("ec2", "cn-north-1")
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.99.1.0/24")["Subnet"]["SubnetId"]
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    first = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]
    again = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]
    assert again["NatGatewayId"] == first["NatGatewayId"]
    ec2.delete_nat_gateway(NatGatewayId=first["NatGatewayId"])
    ec2.release_address(AllocationId=allocation)

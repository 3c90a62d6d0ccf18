"""The types each filtered endpoint lists, as go-bexpr sees Consul's Go structs.

Selectors and their operators follow the Filtering tables of the Consul API docs
(developer.hashicorp.com/consul/api-docs: health, catalog, agent/service, agent/check)
and hashicorp/consul ``agent/structs/structs_filtering_test.go``; fields Consul marks
``bexpr:"-"`` (raft indexes, namespaces, partitions) are left out, as there.
"""

from __future__ import annotations

from rotator.sandbox.consul.filter import BOOL, INT, STR, list_of, map_of, struct

_MESH_GATEWAY = struct(Mode=STR)
_UPSTREAM = struct(DestinationType=STR, DestinationNamespace=STR, DestinationPartition=STR,
                   DestinationPeer=STR, DestinationName=STR, Datacenter=STR,
                   LocalBindAddress=STR, LocalBindPort=INT, LocalBindSocketPath=STR,
                   LocalBindSocketMode=STR, MeshGateway=_MESH_GATEWAY, CentrallyConfigured=BOOL)
_EXPOSE = struct(Checks=BOOL, Paths=list_of(struct(ListenerPort=INT, Path=STR, LocalPathPort=INT,
                                                    Protocol=STR, ParsedFromCheck=BOOL)))
PROXY = struct(DestinationServiceName=STR, DestinationServiceID=STR, LocalServiceAddress=STR,
               LocalServicePort=INT, LocalServiceSocketPath=STR, Mode=STR,
               TransparentProxy=struct(OutboundListenerPort=INT, DialedDirectly=BOOL),
               Upstreams=list_of(_UPSTREAM), MeshGateway=_MESH_GATEWAY, Expose=_EXPOSE)
_SERVICE_ADDRESS = struct(Address=STR, Port=INT)
_WEIGHTS = struct(Passing=INT, Warning=INT)
_STRING_MAP = map_of(STR)

HEALTH_CHECK = struct(
    Node=STR, CheckID=STR, Name=STR, Status=STR, Notes=STR, Output=STR, ServiceID=STR,
    ServiceName=STR, ServiceTags=list_of(STR), Type=STR, Interval=STR, Timeout=STR,
    ExposedPort=INT, PeerName=STR,
)

NODE = struct(ID=STR, Node=STR, Address=STR, Datacenter=STR, PeerName=STR,
              TaggedAddresses=_STRING_MAP, Meta=_STRING_MAP)

NODE_SERVICE = struct(
    Kind=STR, ID=STR, Service=STR, Tags=list_of(STR), Address=STR,
    TaggedAddresses=map_of(_SERVICE_ADDRESS), Meta=_STRING_MAP, Port=INT, SocketPath=STR,
    Weights=_WEIGHTS, EnableTagOverride=BOOL, Proxy=PROXY, Connect=struct(Native=BOOL),
    PeerName=STR,
)

# /v1/health/service/:service (each CheckServiceNode)
CHECK_SERVICE_NODE = struct(Node=NODE, Service=NODE_SERVICE, Checks=list_of(HEALTH_CHECK))

# /v1/catalog/service/:service and /v1/catalog/services (each ServiceNode)
SERVICE_NODE = struct(
    ID=STR, Node=STR, Address=STR, Datacenter=STR, TaggedAddresses=_STRING_MAP,
    NodeMeta=_STRING_MAP, ServiceKind=STR, ServiceID=STR, ServiceName=STR,
    ServiceTags=list_of(STR), ServiceAddress=STR, ServiceTaggedAddresses=map_of(_SERVICE_ADDRESS),
    ServiceWeights=_WEIGHTS, ServiceMeta=_STRING_MAP, ServicePort=INT, ServiceSocketPath=STR,
    ServiceEnableTagOverride=BOOL, ServiceProxy=PROXY, ServiceConnect=struct(Native=BOOL),
    PeerName=STR,
)

# /v1/agent/services (each api.AgentService)
AGENT_SERVICE = struct(
    Kind=STR, ID=STR, Service=STR, Tags=list_of(STR), Meta=_STRING_MAP, Port=INT,
    Address=STR, TaggedAddresses=map_of(_SERVICE_ADDRESS), Weights=_WEIGHTS,
    EnableTagOverride=BOOL, Proxy=PROXY, Connect=struct(Native=BOOL), PeerName=STR,
)

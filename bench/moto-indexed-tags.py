# moto_server for the benchmark, with one change: an EC2 resource's tags are
# looked up by its id instead of by scanning every tag of the account.
#
# moto (5.x) answers TaggedEC2Resource.get_tags() with
# describe_tags(filters={"resource-id": [id]}), which matches a regular
# expression against every (resource, key) pair the account holds. Every ENI
# or instance moto renders, and every one a tag filter (`tag:Key`) looks at,
# pays for all the account's tags: a DescribeNetworkInterfaces filtered by tag
# costs O(ENIs x tags), quadratic in the cluster's size (~0.2 s per call with
# 300 nodes, ~15 s with 1,000), where EC2 answers from an index. The
# benchmark would then measure moto. This lookup returns what the scan
# returns for an exact id (the id filter is fnmatch-translated and anchored,
# and ids hold no wildcard): the same records in the same order.
#
# And one more of the same kind: DescribeNetworkInterfaces filtered by
# network-interface-id (the attach/detach waits poll that way, about five times
# a second) fnmatch-ed every ENI of the account against every id asked for,
# about 20 ms per call with 1,000 ENIs. The ENIs are narrowed to the ids asked
# for by a set lookup first; moto's own filtering then runs on what is left,
# so the answer is the same records in the same order.
#
#   python3 bench/moto-indexed-tags.py -H 127.0.0.1 -p PORT   (moto_server's arguments)
import sys

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, generic_filter, get_prefix
from moto.server import main


def get_tags(self):
    resource_id = self.id
    if not resource_id:
        return []
    # .get: indexing the defaultdict would add an entry the scan never does.
    tags = self.ec2_backend.tags.get(resource_id)
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in list(tags.items())
    ]


TaggedEC2Resource.get_tags = get_tags

_get_all_network_interfaces = NetworkInterfaceBackend.get_all_network_interfaces
_WILDCARDS = set("*?[")


def get_all_network_interfaces(self, eni_ids=None, filters=None):
    wanted = (filters or {}).get("network-interface-id")
    if eni_ids or not isinstance(wanted, list) or any(_WILDCARDS & set(v) for v in wanted):
        return _get_all_network_interfaces(self, eni_ids, filters)
    ids = set(wanted)
    narrowed = [eni for eni in self.enis.values() if eni.id in ids]
    return generic_filter(filters, narrowed)


NetworkInterfaceBackend.get_all_network_interfaces = get_all_network_interfaces

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())

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
#   python3 bench/moto-indexed-tags.py -H 127.0.0.1 -p PORT   (moto_server's arguments)
import sys

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
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

if __name__ == "__main__":
    sys.argv[0] = "moto_server"
    sys.exit(main())
